"""Merge datasets in the canonical layout into one, keeping every image's split and group.

Useful to train on several sources at once (synthetic boards + Gerber renders + real photos).
Ids and groups are prefixed with the source folder's name (``<name>__<id>``) so they cannot
collide; the classes must be the same names in the same order.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pcbseg.data.synth import write_dataset
    >>> tmp = Path(tempfile.mkdtemp())
    >>> a = write_dataset(tmp / "a", num_boards=3, size=64, seed=1, workers=1)
    >>> b = write_dataset(tmp / "b", num_boards=3, size=64, seed=2, workers=1)
    >>> result = merge_datasets([a, b], tmp / "ab")
    >>> len(result.imported), result.rows[0].id.split("__")[0]
    (6, 'a')
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pcbseg.data.builder import DatasetBuilder, ImportResult
from pcbseg.data.layout import DatasetError, DatasetLayout, read_mask
from pcbseg.data.splits import read_splits
from pcbseg.taxonomy import load_classes


def merge_datasets(roots: Sequence[str | Path], out: str | Path, overwrite: bool = False) -> ImportResult:
    roots = [Path(r) for r in roots]
    names = [r.resolve().name for r in roots]
    if len(set(names)) != len(names):
        raise ValueError(f"datasets must have different folder names (they prefix the ids): {names}")
    taxonomies = [load_classes(DatasetLayout(r).classes) for r in roots]
    for r, t in zip(roots[1:], taxonomies[1:], strict=True):
        if t.names != taxonomies[0].names:
            raise DatasetError(DatasetLayout(r).classes, f"classes {list(t.names)} differ from {roots[0]}'s "
                                                         f"{list(taxonomies[0].names)}")
    with DatasetBuilder(out, taxonomies[0], source=" + ".join(map(str, roots)), overwrite=overwrite) as builder:
        builder.notes.append("Merged; each image keeps its split and group, both prefixed with its source's name.")
        for root, name in zip(roots, names, strict=True):
            layout = DatasetLayout(root)
            files, _ = layout.image_files()
            for row in read_splits(layout.splits):
                if row.id not in files:
                    raise DatasetError(layout.splits, f"lists {row.id!r}, which has no image")
                builder.add(f"{name}__{row.id}", files[row.id], read_mask(layout.mask_path(row.id)), split=row.split,
                            group=f"{name}__{row.group}")
        return builder.finish(check_pixels=False)
