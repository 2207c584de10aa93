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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from pcbseg.data.annotations import OVERLAP_RULE, ClassMapper, Shape, box_polygon, paint, taxonomy_for
from pcbseg.data.builder import DEFAULT_GROUP_PATTERN, DatasetBuilder, ImportResult
from pcbseg.data.layout import image_size, read_image
from pcbseg.data.splits import group_of

SPLIT_FOLDERS = {"train": "train", "valid": "val", "val": "val", "validation": "val", "test": "test"}


def decode_segmentation(segm: list | dict, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygon list, RLE or uncompressed RLE) as an HxW 0/1 array.

    Polygons with fewer than 3 points are left out (the caller names them); none left is an error.
    """
    if isinstance(segm, list):
        polys = [p for p in segm if isinstance(p, list) and len(p) >= 6]
        if not polys:
            raise ValueError("no polygon with 3 or more points")
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


def split_of(json_path: Path) -> str | None:
    """The split a COCO file holds: from its folder (Roboflow's ``train/``, ``valid/``) or its name
    (``train.json``, ``instances_val2017.json``), else None."""
    by_folder = SPLIT_FOLDERS.get(json_path.parent.name.lower())
    if by_folder:
        return by_folder
    for word, split in SPLIT_FOLDERS.items():
        if re.search(rf"(?:^|[_.\-]){word}\d*(?:$|[_.\-])", json_path.stem.lower()):
            return split
    return None


def _export_root(json_path: Path) -> Path:
    return json_path.parent.parent if SPLIT_FOLDERS.get(json_path.parent.name.lower()) else json_path.parent


def _has_outline(a: dict) -> bool:
    segm = a.get("segmentation")
    return bool(segm) and (isinstance(segm, dict) or any(isinstance(p, list) and len(p) >= 6 for p in segm))


def import_coco(sources: Sequence[Path], out: Path, classes: str | Sequence[str] | None = None,
                mapping: Mapping[str, str] | None = None, unmapped: str = "error", images: Path | None = None,
                panoptic_masks: Path | None = None, group_pattern: str | None = DEFAULT_GROUP_PATTERN,
                valid_pct: float = 0.2, test_pct: float = 0.0, seed: int = 42, overwrite: bool = False,
                group_duplicates: bool = False, check_pixels: bool = True, strict: bool = False,
                boxes_as_masks: bool = False, keep_split: bool | None = None) -> ImportResult:
    """Build a dataset at ``out`` from one or more COCO JSON files.

    Every annotation lands in its image's mask or is named in ``result.dropped`` (unknown category or
    image, no usable outline, a box without ``boxes_as_masks``); a degenerate polygon drops that
    polygon alone. An export of boxes only is refused unless ``boxes_as_masks`` paints the boxes.

    ``keep_split``: None keeps the export's split when every file has one (by folder or file name),
    True insists on it, False draws a new one by group. Groups never join images of different
    exports (or of different sub-folders of ``file_name``), whatever their names.
    """
    files = [_json_of(Path(s)) for s in sources]
    docs = {f: _load(f) for f in files}
    for f, doc in docs.items():
        anns = [a for a in doc["annotations"] if "segments_info" not in a]
        if anns and not boxes_as_masks and not any(_has_outline(a) for a in anns):
            boxed = sum(bool(a.get("bbox")) for a in anns)
            raise ValueError(f"{f}: the export has boxes and no masks ({boxed} of {len(anns)} annotations are boxes, none "
                             "has a polygon or RLE outline): export it as instance segmentation (Roboflow: 'COCO "
                             "Segmentation'), or pass --boxes-as-masks to paint each box as a filled rectangle")
    cat_names = [c["name"] for d in docs.values() for c in sorted(d["categories"], key=lambda c: c["id"])]
    tax = taxonomy_for(classes, cat_names, name=out.name)
    mapper = ClassMapper(tax, mapping, unmapped)
    splits = {f: split_of(f) for f in files}
    if keep_split and not all(splits.values()):
        unsplit = [str(f) for f, sp in splits.items() if not sp]
        raise ValueError(f"--keep-split: {unsplit} hold no split (neither a train/valid/test folder nor such a file "
                         "name); drop --keep-split to draw one by group")
    keep_split = all(splits.values()) if keep_split is None else keep_split
    roots = sorted({_export_root(f) for f in files})
    tags = {r: (r.name or "export") + (f"-{i}" if [q.name for q in roots].count(r.name) > 1 else "")
            for i, r in enumerate(roots)} if len(roots) > 1 else {}
    with DatasetBuilder(out, tax, source=", ".join(str(f) for f in files), overwrite=overwrite,
                        strict=strict) as builder:
        builder.notes += [OVERLAP_RULE, "Split: " + ("kept from the export's folders." if keep_split else "drawn by group.")]
        if boxes_as_masks:
            builder.notes.append("Boxes without an outline are painted as filled rectangles (--boxes-as-masks).")
        for f, doc in docs.items():
            ids = mapper.check([c["name"] for c in doc["categories"]], str(f))
            class_of = {c["id"]: ids[c["name"]] for c in doc["categories"]}
            image_ids = {img.get("id") for img in doc["images"]}
            anns: dict[int, list[dict]] = {}
            for a in doc["annotations"]:
                if a.get("image_id") not in image_ids:
                    builder.drop(f.name, f"annotation {a.get('id')}", f"image_id {a.get('image_id')} is not in 'images'")
                    continue
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
                if panoptic:
                    try:
                        mask = _panoptic_mask(anns.get(img["id"], []), f, panoptic_masks, class_of, (h, w))
                    except (ValueError, KeyError, TypeError) as e:
                        builder.skip(path, f"panoptic annotation in {f.name} cannot be decoded: {e}")
                        continue
                else:
                    shapes = [s for a in anns.get(img["id"], [])
                              if (s := _shape(a, class_of, (h, w), boxes_as_masks, builder, path.name)) is not None]
                    mask = paint(shapes, (h, w))
                image_id, group = _naming(img["file_name"], tags.get(_export_root(f)), group_pattern)
                builder.add(image_id, path, mask, split=splits[f] if keep_split else None, group=group)
        return builder.finish(valid_pct, test_pct, seed, group_pattern,
                              check_pixels=check_pixels, group_duplicates=group_duplicates)


def _naming(file_name: str, tag: str | None, group_pattern: str | None) -> tuple[str, str]:
    """(image id, group) of an image: sub-folders of ``file_name`` and the export's tag (when several
    exports are imported together) are part of both, so same-named photos of different sources stay apart."""
    parts = [*Path(file_name).parent.parts, Path(file_name).stem]
    parts = [q for q in parts if q not in ("", ".", "..", "/")]
    prefix = [tag] if tag else []
    return "__".join([*prefix, *parts]), "/".join([*prefix, *parts[:-1], group_of(parts[-1], group_pattern)])


def _shape(a: dict, class_of: dict, size: tuple[int, int], boxes_as_masks: bool, builder: DatasetBuilder,
           image: str) -> Shape | None:
    """One annotation as a shape, or None after naming why it is dropped (skipped categories drop silently: asked for)."""
    what = f"annotation {a.get('id')}"
    if a.get("category_id") not in class_of:
        builder.drop(image, what, f"category_id {a.get('category_id')} is not in the file's categories")
        return None
    cid = class_of[a["category_id"]]
    if cid is None:  # --map NAME=skip or --unmapped skip
        return None
    segm = a.get("segmentation")
    if isinstance(segm, list):
        short = [i for i, p in enumerate(segm) if not (isinstance(p, list) and len(p) >= 6)]
        for i in short if len(short) < len(segm) else []:
            builder.drop(image, f"{what}, polygon {i}", "fewer than 3 points (the annotation's other polygons are kept)")
    if _has_outline(a):
        try:
            return Shape(cid, mask=decode_segmentation(segm, *size))
        except (ValueError, KeyError, TypeError) as e:
            builder.drop(image, what, f"its segmentation cannot be decoded: {e}")
            return None
    box = a.get("bbox")
    if box and len(box) == 4 and boxes_as_masks:
        x, y, bw, bh = map(float, box)
        return Shape(cid, polygon=box_polygon(x, y, x + bw, y + bh))
    builder.drop(image, what, "a box without an outline (--boxes-as-masks paints boxes)" if box else
                 "no outline: segmentation is empty or has no polygon of 3 points or more")
    return None


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
