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

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pcbseg.data.builder import DEFAULT_GROUP_PATTERN, DatasetBuilder, ImportResult
from pcbseg.data.layout import IMAGE_EXTENSIONS
from pcbseg.taxonomy import taxonomy_from_names


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
                 group_pattern: str | None = DEFAULT_GROUP_PATTERN, valid_pct: float = 0.2, test_pct: float = 0.0,
                 seed: int = 42, overwrite: bool = False,
                 group_duplicates: bool = False) -> ImportResult:
    """Build a dataset at ``out``; never writes into a non-empty ``out`` unless ``overwrite``."""
    for folder in (images, masks):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not a folder")
    tax = taxonomy_from_names(class_names, name=out.name)
    image_files, mask_files = _by_stem(images), _by_stem(masks)
    with DatasetBuilder(out, tax, source=f"{images} + {masks}", overwrite=overwrite) as builder:
        builder.notes.append(f"Masks read as `{mode}`" + (f" (threshold {threshold}, {foreground} is foreground)."
                                                          if mode == "binary" else "."))
        for stem, image_path in image_files.items():
            if stem not in mask_files:
                builder.skip(image_path, "no mask with the same name")
                continue
            raw = cv2.imread(str(mask_files[stem]), cv2.IMREAD_UNCHANGED)
            if raw is None:
                builder.skip(mask_files[stem], "cannot be read as an image")
                continue
            try:
                mask = to_class_ids(raw, mode, threshold, foreground, colour_map, tax.ignore_index)
            except ValueError as e:
                builder.skip(mask_files[stem], str(e))
                continue
            builder.add(stem, image_path, mask, source_file=mask_files[stem])
        return builder.finish(valid_pct, test_pct, seed, group_pattern, group_duplicates=group_duplicates)
