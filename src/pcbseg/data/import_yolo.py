"""Import YOLO segmentation exports (Roboflow, Ultralytics): ``data.yaml`` + images + ``labels/*.txt``.

Layouts found under the export root (the folder holding ``data.yaml``)::

    train/images, train/labels, valid/images, ...     (Roboflow)
    images/train, labels/train, images/val, ...       (Ultralytics)
    or the split paths written in data.yaml

Each label line is ``class x1 y1 x2 y2 ...`` with coordinates normalised to [0, 1]. Lines with four
numbers are detection boxes, not outlines: they are ignored and counted in the report. An image with
no label file has no objects (YOLO's convention): all background. The export's own split is kept,
and the import warns if it leaks (a source photo on both sides, by name or by pixels).

Example:
    >>> read_label_line("2 0.1 0.1 0.5 0.1 0.5 0.5", 100, 200)[1].tolist()
    [[10.0, 20.0], [50.0, 20.0], [50.0, 100.0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from pcbseg.data.annotations import OVERLAP_RULE, ClassMapper, Shape, box_polygon, paint, taxonomy_for
from pcbseg.data.builder import DEFAULT_GROUP_PATTERN, DatasetBuilder, ImportResult
from pcbseg.data.import_coco import SPLIT_FOLDERS
from pcbseg.data.layout import IMAGE_EXTENSIONS, image_size


def read_label_line(line: str, width: int, height: int, boxes_as_masks: bool = False) -> tuple[int, np.ndarray | None]:
    """``(class index, polygon in pixels)``; the polygon is None for a box line (unless ``boxes_as_masks``)."""
    parts = line.split()
    try:
        cls, coords = int(float(parts[0])), np.array(parts[1:], dtype=float)
    except ValueError:
        raise ValueError("not numbers") from None
    if len(coords) == 4:
        if not boxes_as_masks:
            return cls, None
        cx, cy, bw, bh = coords * [width, height, width, height]
        return cls, box_polygon(cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2)
    if len(coords) < 6 or len(coords) % 2:
        raise ValueError(f"{len(coords)} coordinates: need an even number, at least 6")
    if coords.min() < -0.01 or coords.max() > 1.01:
        raise ValueError("coordinates are not normalised to [0, 1]")
    return cls, coords.reshape(-1, 2) * [width, height]


def _names(doc: dict, path: Path) -> list[str]:
    names = doc.get("names")
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise ValueError(f"{path}: no 'names' list of classes")


def split_folders(root: Path, doc: dict) -> dict[str, tuple[Path, Path]]:
    """``{split: (images folder, labels folder)}`` for the export at ``root``."""
    found: dict[str, tuple[Path, Path]] = {}
    for key in ("train", "val", "valid", "test"):
        entry = doc.get(key)
        if isinstance(entry, str):
            for base in (root, root / ".."):
                images = (base / entry).resolve()
                if images.is_dir():
                    found.setdefault(SPLIT_FOLDERS[key], (images, images.parent / "labels" if images.name == "images"
                                                          else Path(str(images).replace("images", "labels"))))
                    break
    for name, split in SPLIT_FOLDERS.items():
        if split in found:
            continue
        if (root / name / "images").is_dir():
            found[split] = (root / name / "images", root / name / "labels")
        elif (root / "images" / name).is_dir():
            found[split] = (root / "images" / name, root / "labels" / name)
    return found


def import_yolo(root: Path, out: Path, classes: str | Sequence[str] | None = None,
                mapping: Mapping[str, str] | None = None, unmapped: str = "error",
                group_pattern: str | None = DEFAULT_GROUP_PATTERN, keep_split: bool | None = None, valid_pct: float = 0.2,
                test_pct: float = 0.0, seed: int = 42, overwrite: bool = False,
                group_duplicates: bool = False, check_pixels: bool = True, strict: bool = False,
                boxes_as_masks: bool = False) -> ImportResult:
    """Build a dataset at ``out`` from the YOLO export at ``root`` (the folder with ``data.yaml``).

    A label line that cannot be read, names no class of ``data.yaml`` or is a box (without
    ``boxes_as_masks``) is dropped and named; the image's other lines are kept. An export of boxes
    only is refused.
    """
    root = Path(root)
    yaml_path = root / "data.yaml" if root.is_dir() else root
    root = yaml_path.parent
    if not yaml_path.is_file():
        raise FileNotFoundError(f"{yaml_path}: no data.yaml (point at the export's root folder)")
    try:
        doc = yaml.safe_load(yaml_path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{yaml_path}: not valid YAML ({e})") from e
    names = _names(doc, yaml_path)
    folders = split_folders(root, doc)
    if not folders:
        raise FileNotFoundError(f"{root}: no split folders (train/images, images/train, or the paths in data.yaml)")
    keep_split = keep_split is not False  # a YOLO export always comes in split folders
    tax = taxonomy_for(classes, names, name=out.name)
    class_of = ClassMapper(tax, mapping, unmapped).check(names, str(yaml_path))
    boxes = outlines = 0
    with DatasetBuilder(out, tax, source=str(yaml_path), overwrite=overwrite, strict=strict) as builder:
        builder.notes += [OVERLAP_RULE, "Split: " + ("kept from the export." if keep_split else "drawn by group."),
                          "Images without a label file count as all background."]
        for split, (images, labels) in folders.items():
            for path in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
                size = image_size(path)
                if size is None:
                    builder.skip(path, "cannot be read as an image (missing, corrupt or unsupported format)")
                    continue
                h, w = size
                label = labels / f"{path.stem}.txt"
                shapes = []
                lines = label.read_text().splitlines() if label.is_file() else []
                for n, line in enumerate(lines, start=1):
                    if not line.strip():
                        continue
                    try:
                        cls, poly = read_label_line(line, w, h, boxes_as_masks)
                        if not 0 <= cls < len(names):
                            raise ValueError(f"class {cls} is not in data.yaml's {len(names)} names")
                    except ValueError as e:
                        builder.drop(label.name, f"line {n}", str(e))
                        continue
                    if poly is None:
                        boxes += 1
                        builder.drop(label.name, f"line {n}", "a box, not an outline (--boxes-as-masks paints boxes)")
                    elif class_of[names[cls]] is not None:
                        outlines += 1
                        shapes.append(Shape(class_of[names[cls]], polygon=poly))
                builder.add(path.stem, path, paint(shapes, (h, w)), split=split if keep_split else None, source_file=label)
        if boxes and not outlines:
            raise ValueError(f"{yaml_path}: the export has boxes and no masks ({boxes} box lines, no polygon): export "
                             "it as YOLO segmentation ('YOLOv8 Segmentation' on Roboflow), or pass --boxes-as-masks to "
                             "paint each box as a filled rectangle")
        return builder.finish(valid_pct, test_pct, seed, group_pattern,
                              check_pixels=check_pixels, group_duplicates=group_duplicates)
