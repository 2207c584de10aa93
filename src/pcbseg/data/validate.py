"""Check a dataset before anything trains on it, and report every problem at once.

Example:
    >>> import tempfile
    >>> from pcbseg.data.validate import validate_dataset
    >>> [str(p) for p in validate_dataset(tempfile.mkdtemp())][-1].endswith("no images/ folder")
    True
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcbseg.data.layout import DatasetError, DatasetLayout, read_image, read_mask
from pcbseg.data.splits import SPLIT_NAMES, leaking_groups, read_splits
from pcbseg.taxonomy import Taxonomy, TaxonomyError, load_classes


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    level: str = "error"  # or "warning": reported, but training may go on

    def __str__(self) -> str:
        return f"{self.level}: {self.path}: {self.message}"


@dataclass(frozen=True)
class ImageInfo:
    id: str
    image: Path
    height: int
    width: int


def _check_pair(image_id: str, image: Path, mask: Path, tax: Taxonomy | None,
                counts: dict[str, np.ndarray] | None = None) -> tuple[list[Problem], ImageInfo | None]:
    problems: list[Problem] = []
    try:
        img = read_image(image)
    except DatasetError as e:
        return [Problem(e.path, e.reason)], None
    info = ImageInfo(image_id, image, img.shape[0], img.shape[1])
    if not mask.is_file():
        return [Problem(image, f"has no mask (expected {mask})")], info
    try:
        m = read_mask(mask)
    except DatasetError as e:
        return [Problem(e.path, e.reason)], info
    if counts is not None:
        counts[image_id] = np.bincount(m.ravel(), minlength=256)
    if m.shape != img.shape[:2]:
        problems.append(Problem(
            mask, f"mask is {m.shape[1]}x{m.shape[0]} but its image {image.name} is {img.shape[1]}x{img.shape[0]} (WxH)"))
    if tax is not None:
        values = np.unique(m)
        bad = [int(v) for v in values if v >= tax.num_classes and v != tax.ignore_index]
        if bad:
            problems.append(Problem(
                mask, f"class id(s) {bad} not in classes.yaml (ids 0..{tax.num_classes - 1}, ignore {tax.ignore_index})"))
    return problems, info


def validate_dataset(root: str | Path, workers: int = 4) -> list[Problem]:
    """Every problem found in the dataset at ``root`` (empty list: all good)."""
    layout = DatasetLayout(root)
    if not layout.root.is_dir():
        return [Problem(layout.root, "dataset root does not exist")]
    problems: list[Problem] = []
    tax = None
    try:
        tax = load_classes(layout.classes)
    except TaxonomyError as e:
        problems.append(Problem(layout.classes, str(e).split(": ", 1)[-1]))
    if not layout.images.is_dir():
        return [*problems, Problem(layout.root, "no images/ folder")]
    images, dupes = layout.image_files()
    for image_id, paths in dupes:
        problems.append(Problem(paths[0], f"id {image_id!r} is used by several files: {[p.name for p in paths]}"))
    if not images and not dupes:
        problems.append(Problem(layout.images, "empty dataset: no image files"))

    counts: dict[str, np.ndarray] = {}
    with ThreadPoolExecutor(workers) as pool:  # cv2 decodes outside the GIL
        results = list(pool.map(lambda kv: _check_pair(kv[0], kv[1], layout.mask_path(kv[0]), tax, counts),
                                images.items()))
    for found, _ in results:
        problems += found
    if tax is not None and counts:
        problems += _class_problems(layout, tax, counts)
    if layout.masks.is_dir():
        for p in sorted(layout.masks.glob("*.png")):
            if p.stem not in images:
                problems.append(Problem(p, "mask has no image", level="warning"))

    if layout.splits.exists():
        try:
            rows = read_splits(layout.splits)
        except DatasetError as e:
            problems.append(Problem(e.path, e.reason))
        else:
            missing = [r.id for r in rows if r.id not in images]
            if missing:
                problems.append(Problem(layout.splits, f"names {len(missing)} id(s) with no image: {missing[:5]}"))
            sizes = {s: sum(r.split == s and r.id in images for r in rows) for s in SPLIT_NAMES}
            for split in ("train", "val"):
                if not sizes[split]:
                    # a warning: a part meant for pcbseg-import merge may hold one split only; training refuses it
                    problems.append(Problem(layout.splits, f"the {split} split is empty: "
                                            + ("nothing to train on" if split == "train" else
                                               "nothing would judge the model (remake the split with a valid share > 0)"),
                                            level="warning"))
            if tax is not None and sizes["train"]:
                train = sum((counts[r.id] for r in rows if r.split == "train" and r.id in counts), np.zeros(256, np.int64))
                total = sum(counts.values(), np.zeros(256, np.int64))
                unseen = [n for i, n in enumerate(tax.names) if train[i] == 0 and total[i] > 0]
                if unseen:
                    problems.append(Problem(layout.splits, f"class(es) {unseen} have pixels only outside the train "
                                            "split: the model never sees them", level="warning"))
            for group, splits in sorted(leaking_groups(rows).items())[:10]:
                problems.append(Problem(layout.splits, f"group {group!r} is in splits {sorted(splits)}: the holdout leaks"))
            listed = {r.id for r in rows}
            unlisted = [i for i in images if i not in listed]
            if unlisted:
                problems.append(Problem(layout.splits, f"{len(unlisted)} image(s) not listed yet (e.g. {unlisted[0]!r}); "
                                        "they will be appended to train", level="warning"))
    return problems


def _class_problems(layout: DatasetLayout, tax: Taxonomy, counts: dict[str, np.ndarray]) -> list[Problem]:
    """Classes with no pixel at all (a warning), and masks that hold one class only (an error: nothing to learn)."""
    total = sum(counts.values(), np.zeros(256, np.int64))[: tax.num_classes]
    present = [tax.names[i] for i in np.flatnonzero(total)]
    if len(present) <= 1:
        what = f"only class {present[0]!r}" if present else "no labelled pixel (all ignore)"
        return [Problem(layout.masks, f"every mask holds {what}: nothing to learn (a detection-only export imported "
                        "without boxes? masks inverted or thresholded wrongly?)")]
    empty = [n for n, c in zip(tax.names, total, strict=True) if c == 0]
    if empty:
        return [Problem(layout.classes, f"class(es) {empty} have no pixel in any mask; they can never be learnt "
                        "(drop them from classes.yaml, or check the import's class map)", level="warning")]
    return []


def image_infos(root: str | Path) -> dict[str, ImageInfo]:
    """Sizes of every readable image, for tiling; assumes the dataset validated."""
    layout = DatasetLayout(root)
    images, _ = layout.image_files()
    with ThreadPoolExecutor(4) as pool:
        infos = pool.map(lambda kv: _check_pair(kv[0], kv[1], layout.mask_path(kv[0]), None)[1], images.items())
    return {i.id: i for i in infos if i is not None}


def check_dataset(root: str | Path) -> list[Problem]:
    """Raise :class:`DatasetError` listing every error; return the warnings."""
    problems = validate_dataset(root)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        lines = "\n  ".join(str(p) for p in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        raise DatasetError(root, f"dataset has {len(errors)} problem(s):\n  {lines}{more}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """``pcbseg-validate DATASET_ROOT``: print every problem; exit 1 if any is an error."""
    ap = argparse.ArgumentParser(prog="pcbseg-validate", description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="dataset root (images/, masks/, classes.yaml, splits.csv)")
    args = ap.parse_args(argv)
    problems = validate_dataset(args.root)
    for p in problems:
        print(p)
    errors = sum(p.level == "error" for p in problems)
    images, _ = DatasetLayout(args.root).image_files()
    print(f"{args.root}: {len(images)} image(s), {errors} error(s), {len(problems) - errors} warning(s)")
    if not errors and DatasetLayout(args.root).splits.exists():
        rows = read_splits(DatasetLayout(args.root).splits)
        print("splits: " + ", ".join(f"{s}={sum(r.split == s for r in rows)}" for s in SPLIT_NAMES))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
