"""Import image + mask folders (matched by file stem) into the canonical layout.

Masks may be class-index PNGs, colour masks with a colour -> class map, or binary masks
(thresholded, with a choice of which side is foreground: JPEG masks are noisy around 0 and 255).

Example:
    >>> import numpy as np
    >>> to_class_ids(np.array([[3, 250], [120, 140]], np.uint8), mode="binary", foreground="dark")
    array([[1, 0],
           [1, 0]], dtype=uint8)
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pcbseg.data.layout import IMAGE_EXTENSIONS, DatasetLayout, write_mask
from pcbseg.data.splits import SPLIT_NAMES, ensure_splits
from pcbseg.taxonomy import Taxonomy, taxonomy_from_names


@dataclass
class ImportResult:
    root: Path
    imported: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)


def _by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS}


def to_class_ids(mask: np.ndarray, mode: str = "index", threshold: int = 127, foreground: str = "light",
                 colour_map: dict[tuple[int, int, int], int] | None = None, ignore_index: int = 255) -> np.ndarray:
    """Convert a mask as stored by a labelling tool into uint8 class ids."""
    if mode == "binary":
        grey = mask if mask.ndim == 2 else cv2.cvtColor(mask, cv2.COLOR_BGR2GRAY)
        fg = grey < threshold if foreground == "dark" else grey > threshold
        return fg.astype(np.uint8)
    if mode == "colour":
        if mask.ndim != 3 or not colour_map:
            raise ValueError("colour masks need 3 channels and a colour map")
        rgb = cv2.cvtColor(mask, cv2.COLOR_BGR2RGB)
        out = np.full(mask.shape[:2], ignore_index, np.uint8)
        for colour, cid in colour_map.items():
            out[(rgb == np.array(colour, np.uint8)).all(-1)] = cid
        return out
    if mode == "index":
        if mask.ndim != 2:
            raise ValueError(f"index masks must be single-channel, got {mask.shape[2]} channels")
        return mask.astype(np.uint8)
    raise ValueError(f"unknown mask mode {mode!r}: index, colour or binary")


def import_masks(images: Path, masks: Path, out: Path, class_names: Sequence[str], mode: str = "index",
                 threshold: int = 127, foreground: str = "light", colour_map: dict | None = None,
                 group_pattern: str | None = None, valid_pct: float = 0.2, test_pct: float = 0.0, seed: int = 42,
                 overwrite: bool = False) -> ImportResult:
    """Build a dataset at ``out``; never writes into a non-empty ``out`` unless ``overwrite``."""
    for folder in (images, masks):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: not empty; pass --overwrite to replace it, or choose another --out")
    tax = taxonomy_from_names(class_names, name=out.name)
    image_files, mask_files = _by_stem(images), _by_stem(masks)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    layout = DatasetLayout(tmp)
    layout.images.mkdir()
    layout.masks.mkdir()
    result = ImportResult(out)
    pixels = np.zeros(256, np.int64)
    try:
        for stem, image_path in image_files.items():
            if stem not in mask_files:
                result.skipped.append((str(image_path), "no mask with the same name"))
                continue
            image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            raw = cv2.imread(str(mask_files[stem]), cv2.IMREAD_UNCHANGED)
            if image is None or raw is None:
                bad = image_path if image is None else mask_files[stem]
                result.skipped.append((str(bad), "cannot be read as an image"))
                continue
            try:
                mask = to_class_ids(raw, mode, threshold, foreground, colour_map, tax.ignore_index)
            except ValueError as e:
                result.skipped.append((str(mask_files[stem]), str(e)))
                continue
            if mask.shape != image.shape[:2]:
                result.skipped.append((str(mask_files[stem]), f"mask {mask.shape[::-1]} and image {image.shape[1::-1]} differ"))
                continue
            bad_ids = sorted(set(np.unique(mask).tolist()) - set(range(tax.num_classes)) - {tax.ignore_index})
            if bad_ids:
                result.skipped.append((str(mask_files[stem]), f"class ids {bad_ids} beyond the {tax.num_classes} classes"))
                continue
            shutil.copy2(image_path, layout.images / f"{stem}{image_path.suffix.lower()}")
            write_mask(layout.mask_path(stem), mask)
            pixels += np.bincount(mask.ravel(), minlength=256)
            result.imported.append(stem)
        if not result.imported:
            raise ValueError(f"{images}: no image could be imported ({len(result.skipped)} skipped)")
        tax.save(layout.classes)
        rows = ensure_splits(layout.splits, result.imported, valid_pct, test_pct, seed, group_pattern)
        _report(tmp / "import_report.md", images, masks, tax, pixels, rows, result)
        if out.exists():
            shutil.rmtree(out) if overwrite else out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _report(path: Path, images: Path, masks: Path, tax: Taxonomy, pixels: np.ndarray, rows: list, result: ImportResult) -> None:
    total = pixels[: tax.num_classes].sum() or 1
    lines = [f"# Import of {images} + {masks}", "", f"{len(result.imported)} images imported, {len(result.skipped)} skipped.", "",
             "| class | pixels | share |", "|---|---|---|"]
    lines += [f"| {n} | {int(pixels[i])} | {100 * pixels[i] / total:.2f}% |" for i, n in enumerate(tax.names)]
    lines += ["", "| split | images |", "|---|---|"]
    lines += [f"| {s} | {sum(r.split == s for r in rows)} |" for s in SPLIT_NAMES]
    if result.skipped:
        lines += ["", "## Skipped", ""] + [f"- `{f}`: {why}" for f, why in result.skipped]
    path.write_text("\n".join(lines) + "\n")
