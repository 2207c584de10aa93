"""The fixed holdout: ``splits.csv`` is made once, by group, and never silently changes.

Rules:

- The split is by ``group`` (the source board or photo): a group is never on both sides.
- Once ``splits.csv`` exists it is the truth: another ``seed`` or ``valid_pct`` does not move it.
  Only ``regenerate=True`` makes a new one, and the old file is kept as a timestamped backup.
- Images that appear later join their group's split if the group is known, otherwise train
  (``new_images="train"``), or they are refused (``new_images="error"``). Existing rows are never
  rewritten; new rows are appended.

Example:
    >>> from pcbseg.data.splits import assign_splits
    >>> s = assign_splits(["a", "a", "b", "c", "d", "e"], valid_pct=0.2, seed=0)
    >>> sorted(s.values()).count("val"), len(s)
    (1, 5)
"""

from __future__ import annotations

import csv
import logging
import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pcbseg.data.layout import DatasetError

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
COLUMNS = ("id", "split", "group")


@dataclass(frozen=True)
class SplitRow:
    id: str
    split: str
    group: str


def group_of(image_id: str, pattern: str | None = None) -> str:
    """The group of an image: its id, or the first capture group of ``pattern`` matched against it.

    >>> group_of("board3_rot90", r"^(.*?)(?:_rot\\d+|_flip)*$")
    'board3'
    """
    if not pattern:
        return image_id
    m = re.match(pattern, image_id)
    if not m:
        return image_id
    return m.group(1) if m.groups() else m.group(0)


def assign_splits(groups: Iterable[str], valid_pct: float = 0.2, test_pct: float = 0.0, seed: int = 42) -> dict[str, str]:
    """Split distinct groups at random into val, test and train (in that order of drawing)."""
    if not (0 <= valid_pct < 1 and 0 <= test_pct < 1 and valid_pct + test_pct < 1):
        raise ValueError(f"valid_pct={valid_pct} and test_pct={test_pct} must be in [0, 1) and sum below 1")
    uniq = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(uniq))

    def count(pct: float) -> int:
        return max(1, round(pct * len(uniq))) if pct > 0 and len(uniq) > 1 else 0

    n_val, n_test = count(valid_pct), count(test_pct)
    n_val, n_test = min(n_val, max(len(uniq) - 1, 0)), min(n_test, max(len(uniq) - 1 - n_val, 0))
    out = {}
    for rank, i in enumerate(order):
        out[uniq[i]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return out


def read_splits(path: str | Path) -> list[SplitRow]:
    """Read and check ``splits.csv``; problems name the file and line."""
    path = Path(path)
    rows: list[SplitRow] = []
    seen: dict[str, int] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not set(COLUMNS) <= set(reader.fieldnames):
            raise DatasetError(path, f"header must have columns {', '.join(COLUMNS)}; found {reader.fieldnames}")
        for line, r in enumerate(reader, start=2):
            if r["split"] not in SPLIT_NAMES:
                raise DatasetError(path, f"line {line}: split {r['split']!r} is not one of {SPLIT_NAMES}")
            if r["id"] in seen:
                raise DatasetError(path, f"line {line}: id {r['id']!r} already listed on line {seen[r['id']]}")
            seen[r["id"]] = line
            rows.append(SplitRow(r["id"], r["split"], r["group"] or r["id"]))
    return rows


def leaking_groups(rows: Iterable[SplitRow]) -> dict[str, set[str]]:
    """Groups that sit in more than one split."""
    by_group: dict[str, set[str]] = {}
    for r in rows:
        by_group.setdefault(r.group, set()).add(r.split)
    return {g: s for g, s in by_group.items() if len(s) > 1}


def write_splits(path: str | Path, rows: Iterable[SplitRow], overwrite: bool = False) -> None:
    """Write a new ``splits.csv`` atomically; refuses to replace one unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: a split file exists; it is the fixed holdout and is not replaced without being asked")
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows((r.id, r.split, r.group) for r in rows)
    tmp.replace(path)


def _append(path: Path, rows: list[SplitRow]) -> None:
    with path.open("a", newline="") as f:
        csv.writer(f).writerows((r.id, r.split, r.group) for r in rows)


def make_splits(ids: Iterable[str], valid_pct: float = 0.2, test_pct: float = 0.0, seed: int = 42,
                group_pattern: str | None = None) -> list[SplitRow]:
    ids = sorted(ids)
    groups = {i: group_of(i, group_pattern) for i in ids}
    by_group = assign_splits(groups.values(), valid_pct, test_pct, seed)
    return [SplitRow(i, by_group[groups[i]], groups[i]) for i in ids]


def ensure_splits(
    path: str | Path,
    ids: Iterable[str],
    valid_pct: float = 0.2,
    test_pct: float = 0.0,
    seed: int = 42,
    group_pattern: str | None = None,
    regenerate: bool = False,
    new_images: str = "train",
) -> list[SplitRow]:
    """Return the dataset's split, creating ``splits.csv`` the first time only.

    ``valid_pct``, ``test_pct``, ``seed`` and ``group_pattern`` matter only when the file is made.
    """
    path = Path(path)
    ids = sorted(set(ids))
    if regenerate and path.exists():
        backup = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(path, backup)
        log.warning("Regenerating %s as asked; the previous split is kept in %s", path, backup)
    if regenerate or not path.exists():
        rows = make_splits(ids, valid_pct, test_pct, seed, group_pattern)
        write_splits(path, rows, overwrite=regenerate)
        counts = {s: sum(r.split == s for r in rows) for s in SPLIT_NAMES}
        log.info("Created %s: %s (valid_pct=%s, test_pct=%s, seed=%s)", path, counts, valid_pct, test_pct, seed)
        return rows

    rows = read_splits(path)
    known = {r.id for r in rows}
    id_set = set(ids)
    missing = [r.id for r in rows if r.id not in id_set]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(path, f"names {len(missing)} id(s) with no image in the dataset: {shown}")
    new = [i for i in ids if i not in known]
    if new:
        if new_images not in ("train", "error"):
            raise ValueError(f"new_images must be 'train' or 'error', got {new_images!r}")
        group_split = {r.group: r.split for r in rows}
        added, refused = [], []
        for i in new:
            g = group_of(i, group_pattern)
            if g in group_split:
                added.append(SplitRow(i, group_split[g], g))
            elif new_images == "train":
                added.append(SplitRow(i, "train", g))
            else:
                refused.append(i)
        if refused:
            raise DatasetError(path, f"{len(refused)} image(s) are not in the split file (e.g. {refused[0]!r}) "
                               "and new_images='error'")
        _append(path, added)
        log.warning("%s: appended %d new image(s) (%s to train); existing assignments untouched",
                    path, len(added), sum(r.split == "train" for r in added))
        rows += added
    return rows
