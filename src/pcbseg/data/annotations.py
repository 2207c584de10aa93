"""Shared by the shape-based importers (COCO, YOLO, CVAT): category names to classes, shapes to masks.

Overlap rule, the same for every format: shapes are painted in order of ``z`` (CVAT's ``z_order``;
0 elsewhere), then from the largest area to the smallest, so where two shapes overlap the smaller one
wins: a via drawn on top of a trace stays a via, a pad stays visible on its component. Pixels no
shape covers are ``background`` (class 0).

Example:
    >>> from pcbseg.taxonomy import get_taxonomy
    >>> cm = ClassMapper(get_taxonomy("default"), {"R": "component"})
    >>> cm.id_for("Trace"), cm.id_for("R"), cm.id_for("resistor")   # by name, by map, by parent class
    (1, 4, 4)
    >>> big = Shape(1, polygon=np.array([[0, 0], [7, 0], [7, 7], [0, 7]], float))
    >>> small = Shape(2, polygon=np.array([[2, 2], [4, 2], [4, 4], [2, 4]], float))
    >>> paint([small, big], (8, 8))[3, 1:6].tolist()
    [1, 2, 2, 1, 1]
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from pcbseg.taxonomy import TAXONOMIES, Taxonomy, get_taxonomy, taxonomy_from_names

UNMAPPED_CHOICES = ("error", "ignore", "skip")


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def taxonomy_for(classes: str | Sequence[str] | None, categories: Iterable[str], name: str = "imported") -> Taxonomy:
    """The taxonomy to import into: a built-in one by name, an explicit list, or ``background`` + the export's categories."""
    if isinstance(classes, str):
        if classes in TAXONOMIES:
            return get_taxonomy(classes)
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    if not classes:
        cats = [c for c in dict.fromkeys(categories) if _norm(c) != "background"]
        classes = ["background", *cats]
    return taxonomy_from_names(list(classes), name=name)


class ClassMapper:
    """Category name -> class id: an explicit map first, then the class of that name, then its parent.

    ``unmapped``: ``error`` (default) refuses categories with no class; ``ignore`` paints them with
    the ignore index (no loss, no metric there); ``skip`` drops their shapes (they become background).
    """

    def __init__(self, taxonomy: Taxonomy, mapping: Mapping[str, str] | None = None, unmapped: str = "error"):
        if unmapped not in UNMAPPED_CHOICES:
            raise ValueError(f"unmapped must be one of {UNMAPPED_CHOICES}, got {unmapped!r}")
        self.taxonomy, self.unmapped = taxonomy, unmapped
        self.mapping = {_norm(k): v for k, v in (mapping or {}).items()}
        self._by_norm = {_norm(n): i for i, n in enumerate(taxonomy.names)}
        for src, dst in self.mapping.items():
            if _norm(dst) not in self._by_norm and dst not in ("ignore", "skip"):
                raise ValueError(f"--map {src}={dst}: {dst!r} is not a class of {list(taxonomy.names)} (or ignore/skip)")

    def id_for(self, category: str) -> int | None:
        """The class id, the ignore index, or None when the category's shapes are dropped."""
        key = _norm(category)
        target = self.mapping.get(key, key)
        if target == "skip":
            return None
        if target == "ignore":
            return self.taxonomy.ignore_index
        if _norm(target) in self._by_norm:
            return self._by_norm[_norm(target)]
        try:
            return self.taxonomy.resolve(target)
        except KeyError:
            pass
        if self.unmapped == "error":
            raise KeyError(category)
        return self.taxonomy.ignore_index if self.unmapped == "ignore" else None

    def check(self, categories: Iterable[str], source: str) -> dict[str, int | None]:
        """Map every category at once; one error lists all that have no class."""
        out, missing = {}, []
        for c in dict.fromkeys(categories):
            try:
                out[c] = self.id_for(c)
            except KeyError:
                missing.append(c)
        if missing:
            raise ValueError(
                f"{source}: categories {missing} have no class in {list(self.taxonomy.names)}; map them with "
                "--map NAME=CLASS (or NAME=ignore / NAME=skip), or pass --unmapped ignore|skip"
            )
        return out


@dataclass
class Shape:
    """One labelled shape: a polygon (N x 2 pixel coordinates) or a boolean mask, and its class id."""

    class_id: int
    polygon: np.ndarray | None = None
    mask: np.ndarray | None = None
    z: int = 0

    def area(self) -> float:
        if self.mask is not None:
            return float(self.mask.sum())
        return float(abs(cv2.contourArea(self.polygon.astype(np.float32))))


def rasterize(polygon: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An HxW 0/1 array of a polygon (N x 2, pixel-corner coordinates), by pycocotools' rule.

    Every format's polygons go through here, so the same outline gives the same pixels whether it
    came from COCO, YOLO or CVAT.
    """
    h, w = size
    rle = mask_utils.frPyObjects([np.asarray(polygon, np.float64).ravel().tolist()], h, w)
    return mask_utils.decode(mask_utils.merge(rle))


def box_polygon(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The four corners of an axis-aligned box, as a polygon (``--boxes-as-masks``)."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def paint(shapes: Sequence[Shape], size: tuple[int, int], background: int = 0) -> np.ndarray:
    """An HxW uint8 class mask; overlaps follow the module's rule (higher z, then smaller area, wins)."""
    out = np.full(size, background, np.uint8)
    for s in sorted(shapes, key=lambda s: (s.z, -s.area())):
        m = s.mask if s.mask is not None else rasterize(s.polygon, size)
        out[m.astype(bool)] = s.class_id
    return out


OVERLAP_RULE = ("Where shapes overlap, the one with the higher z-order wins, then the smaller one "
                "(shapes are painted largest first); unlabelled pixels are background.")
