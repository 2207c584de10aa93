"""Import COCO exports: instance JSON (polygons, RLE, uncompressed RLE) and panoptic JSON + PNGs.

Sources are JSON files, or folders holding one (Roboflow puts ``_annotations.coco.json`` beside the
images of each split). Images are looked up next to the JSON, in ``images/`` beside it, or in
``--images``. If every source sits in a folder named ``train``, ``valid``/``val`` or ``test``, that
split is kept; otherwise the holdout is drawn by group. Shapes become masks with
:func:`pcbseg.data.annotations.paint` (smaller shapes win where they overlap).

Example:
    >>> segm = [[1, 1, 6, 1, 6, 6, 1, 6]]                     # one polygon, COCO style
    >>> int(decode_segmentation(segm, 8, 8).sum())
    25
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from pcbseg.data.annotations import OVERLAP_RULE, ClassMapper, Shape, paint, taxonomy_for
from pcbseg.data.builder import DEFAULT_GROUP_PATTERN, DatasetBuilder, ImportResult
from pcbseg.data.layout import image_size, read_image

SPLIT_FOLDERS = {"train": "train", "valid": "val", "val": "val", "validation": "val", "test": "test"}


def decode_segmentation(segm: list | dict, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygon list, RLE or uncompressed RLE) as an HxW 0/1 array."""
    if isinstance(segm, list):
        polys = [p for p in segm if len(p) >= 6]
        if not polys:
            raise ValueError("polygon with fewer than 3 points")
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif isinstance(segm, dict) and isinstance(segm.get("counts"), list):
        rle = mask_utils.frPyObjects(segm, height, width)
    elif isinstance(segm, dict) and "counts" in segm:
        rle = dict(segm, counts=segm["counts"].encode() if isinstance(segm["counts"], str) else segm["counts"])
    else:
        raise ValueError(f"unrecognised segmentation of type {type(segm).__name__}")
    return mask_utils.decode(rle)


def _json_of(src: Path) -> Path:
    if src.is_file():
        return src
    if src.is_dir():
        found = sorted(src.glob("*.json"))
        if len(found) == 1:
            return found[0]
        raise FileNotFoundError(f"{src}: expected one COCO .json in the folder, found {len(found)}")
    raise FileNotFoundError(f"{src}: no such file or folder")


def _find_image(name: str, json_path: Path, images: Path | None) -> Path | None:
    for folder in ([images] if images else []) + [json_path.parent, json_path.parent / "images"]:
        for cand in (folder / name, folder / Path(name).name):
            if cand.is_file():
                return cand
    return None


def _load(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from e
    for key in ("images", "annotations", "categories"):
        if key not in doc:
            raise ValueError(f"{path}: not a COCO file (no {key!r} list)")
    return doc


def import_coco(sources: Sequence[Path], out: Path, classes: str | Sequence[str] | None = None,
                mapping: Mapping[str, str] | None = None, unmapped: str = "error", images: Path | None = None,
                panoptic_masks: Path | None = None, group_pattern: str | None = DEFAULT_GROUP_PATTERN,
                valid_pct: float = 0.2, test_pct: float = 0.0, seed: int = 42, overwrite: bool = False,
                group_duplicates: bool = False, check_pixels: bool = True) -> ImportResult:
    """Build a dataset at ``out`` from one or more COCO JSON files."""
    files = [_json_of(Path(s)) for s in sources]
    docs = {f: _load(f) for f in files}
    cat_names = [c["name"] for d in docs.values() for c in sorted(d["categories"], key=lambda c: c["id"])]
    tax = taxonomy_for(classes, cat_names, name=out.name)
    mapper = ClassMapper(tax, mapping, unmapped)
    splits = {f: SPLIT_FOLDERS.get(f.parent.name.lower()) for f in files}
    keep_split = all(splits.values())
    with DatasetBuilder(out, tax, source=", ".join(str(f) for f in files), overwrite=overwrite) as builder:
        builder.notes += [OVERLAP_RULE, "Split: " + ("kept from the export's folders." if keep_split else "drawn by group.")]
        for f, doc in docs.items():
            ids = mapper.check([c["name"] for c in doc["categories"]], str(f))
            class_of = {c["id"]: ids[c["name"]] for c in doc["categories"]}
            anns: dict[int, list[dict]] = {}
            for a in doc["annotations"]:
                anns.setdefault(a["image_id"], []).append(a)
            panoptic = any("segments_info" in a for a in doc["annotations"])
            for img in doc["images"]:
                path = _find_image(img["file_name"], f, images)
                if path is None:
                    builder.skip(img["file_name"], f"listed in {f.name} but not found beside it or in --images")
                    continue
                size = image_size(path)
                if size is None:
                    builder.skip(path, "cannot be read as an image (missing, corrupt or unsupported format)")
                    continue
                h, w = size
                if (img.get("height", h), img.get("width", w)) != (h, w):
                    builder.skip(path, f"{f.name} says {img.get('width')}x{img.get('height')}, the file is {w}x{h}")
                    continue
                try:
                    if panoptic:
                        mask = _panoptic_mask(anns.get(img["id"], []), f, panoptic_masks, class_of, (h, w))
                    else:
                        shapes = [Shape(class_of[a["category_id"]], mask=decode_segmentation(a["segmentation"], h, w))
                                  for a in anns.get(img["id"], []) if class_of.get(a["category_id"]) is not None]
                        mask = paint(shapes, (h, w))
                except (ValueError, KeyError, TypeError) as e:
                    builder.skip(path, f"annotation in {f.name} cannot be decoded: {e}")
                    continue
                builder.add(path.stem, path, mask, split=splits[f] if keep_split else None)
        return builder.finish(valid_pct, test_pct, seed, group_pattern,
                              check_pixels=check_pixels, group_duplicates=group_duplicates)


def _panoptic_mask(anns: list[dict], json_path: Path, folder: Path | None, class_of: dict, size: tuple[int, int]) -> np.ndarray:
    if not anns:
        return np.zeros(size, np.uint8)
    ann = anns[0]
    folder = folder or json_path.with_suffix("")
    png = folder / ann["file_name"]
    rgb = read_image(png).astype(np.int64)
    seg_ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    shapes = [Shape(class_of[s["category_id"]], mask=seg_ids == s["id"]) for s in ann["segments_info"]
              if class_of.get(s["category_id"]) is not None]
    return paint(shapes, size)
