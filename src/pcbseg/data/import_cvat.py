"""Import "CVAT for images 1.1" XML: polygons and masks become classes; boxes, lines and points are ignored.

Images are looked up by their ``name`` attribute under ``--images`` (default: the XML's folder, then
``images/`` beside it). Shapes are painted with :func:`pcbseg.data.annotations.paint`: higher
``z_order`` wins, then the smaller shape. The holdout is drawn by group.

Example:
    >>> cvat_mask_rle("2, 3, 1", left=1, top=0, width=3, height=2, size=(2, 5)).astype(int).tolist()
    [[0, 0, 0, 1, 0], [0, 1, 1, 0, 0]]
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pcbseg.data.annotations import OVERLAP_RULE, ClassMapper, Shape, box_polygon, paint, taxonomy_for
from pcbseg.data.builder import DEFAULT_GROUP_PATTERN, DatasetBuilder, ImportResult
from pcbseg.data.import_coco import SPLIT_FOLDERS
from pcbseg.data.layout import image_size


def cvat_mask_rle(rle: str, left: int, top: int, width: int, height: int, size: tuple[int, int]) -> np.ndarray:
    """Decode CVAT's mask run lengths (alternating 0-runs and 1-runs, row-major over the box)."""
    runs = [int(v) for v in rle.replace(" ", "").split(",") if v]
    flat = np.zeros(width * height, bool)
    pos = 0
    for i, n in enumerate(runs):
        if i % 2:
            flat[pos:pos + n] = True
        pos += n
    out = np.zeros(size, bool)
    box = flat.reshape(height, width)
    h, w = min(height, size[0] - top), min(width, size[1] - left)
    out[top:top + h, left:left + w] = box[:h, :w]
    return out


def _points(text: str) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in text.split(";") if p.strip()])


def import_cvat(xml_path: Path, out: Path, images: Path | None = None, classes: str | Sequence[str] | None = None,
                mapping: Mapping[str, str] | None = None, unmapped: str = "error",
                group_pattern: str | None = DEFAULT_GROUP_PATTERN, valid_pct: float = 0.2, test_pct: float = 0.0,
                seed: int = 42, overwrite: bool = False,
                group_duplicates: bool = False, strict: bool = False, boxes_as_masks: bool = False,
                keep_split: bool | None = None) -> ImportResult:
    """Build a dataset at ``out`` from a CVAT for images 1.1 XML file.

    Polygons and masks outline pixels; a polygon of fewer than 3 points, a shape that cannot be
    read, and boxes, polylines, points, ellipses... (which outline nothing) are dropped and named.
    ``boxes_as_masks`` paints boxes as filled rectangles; an export of boxes only is refused without it.
    A project export's ``subset`` of each image (Train, Validation, Test) is kept as the split when
    every image has one (``keep_split`` None), insisted on (True) or redrawn by group (False).
    """
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as e:
        raise ValueError(f"{xml_path}: not a readable XML file ({e})") from e
    if root.tag != "annotations":
        raise ValueError(f"{xml_path}: not a CVAT for images export (root element <{root.tag}>)")
    labels = [n.text for n in root.findall("./meta//label/name") if n.text]
    labels += [s.get("label", "") for img in root.iter("image") for s in img if s.get("label")]
    tax = taxonomy_for(classes, labels, name=out.name)
    class_of = ClassMapper(tax, mapping, unmapped).check(labels, str(xml_path))
    tags = Counter(s.tag for img in root.iter("image") for s in img)
    if tags["box"] and not boxes_as_masks and not (tags["polygon"] or tags["mask"]):
        raise ValueError(f"{xml_path}: the export has boxes and no masks ({tags['box']} <box>, no <polygon> or <mask>): "
                         "annotate or export polygons, or pass --boxes-as-masks to paint each box as a filled rectangle")
    subsets = {img.get("name", ""): SPLIT_FOLDERS.get((img.get("subset") or "").lower()) for img in root.iter("image")}
    if keep_split and not all(subsets.values()):
        raise ValueError(f"{xml_path}: --keep-split: not every <image> has a subset of train, validation or test")
    keep_split = bool(subsets) and all(subsets.values()) if keep_split is None else keep_split
    folders = [images] if images else [xml_path.parent, xml_path.parent / "images"]
    with DatasetBuilder(out, tax, source=str(xml_path), overwrite=overwrite, strict=strict) as builder:
        builder.notes += [OVERLAP_RULE, "Split: " + ("kept from the export's subsets." if keep_split else "drawn by group.")]
        for img in root.iter("image"):
            name = img.get("name", "")
            path = next((f / name for f in folders if (f / name).is_file()), None)
            if path is None:
                builder.skip(name, f"listed in {xml_path.name} but not found under {', '.join(map(str, folders))}")
                continue
            size = image_size(path)
            if size is None:
                builder.skip(path, "cannot be read as an image (missing, corrupt or unsupported format)")
                continue
            h, w = size
            shapes = []
            for k, s in enumerate(img):
                if s.tag == "tag":
                    continue
                what = f"<{s.tag}> #{k} ({s.get('label', '')})"
                cid = class_of.get(s.get("label", ""))
                if cid is None and s.get("label", "") in class_of:
                    continue  # a skipped category: asked for
                try:
                    z = int(s.get("z_order", 0))
                    if s.tag == "polygon":
                        pts = _points(s.get("points", ""))
                        if len(pts) < 3:
                            builder.drop(name, what, f"{len(pts)} point(s): a polygon needs 3 or more")
                            continue
                        shapes.append(Shape(cid, polygon=pts, z=z))
                    elif s.tag == "mask":
                        m = cvat_mask_rle(s.get("rle", ""), int(float(s.get("left", 0))), int(float(s.get("top", 0))),
                                          int(float(s.get("width", 0))), int(float(s.get("height", 0))), (h, w))
                        shapes.append(Shape(cid, mask=m, z=z))
                    elif s.tag == "box" and boxes_as_masks:
                        box = [float(s.get(key)) for key in ("xtl", "ytl", "xbr", "ybr")]
                        shapes.append(Shape(cid, polygon=box_polygon(*box), z=z))
                    else:
                        builder.drop(name, what, "outlines no area: only polygons and masks (and boxes with "
                                     "--boxes-as-masks) are painted")
                except (ValueError, IndexError, TypeError) as e:
                    builder.drop(name, what, f"cannot be read: {e}")
            builder.add(Path(name).stem, path, paint(shapes, (h, w)), split=subsets[name] if keep_split else None)
        return builder.finish(valid_pct, test_pct, seed, group_pattern, group_duplicates=group_duplicates)
