"""Draw gerbonara geometry into pixel layers: millimetres in, uint8 0/1 out.

Gerber's y axis points up and an image's points down; :class:`Canvas` does the flip. Everything
goes through gerbonara's ``to_primitives(unit=MM)`` (circles, lines, arcs, polygons with arcs), so
aperture macros and unit conversion are gerbonara's; drawing is OpenCV's, with 1/16 px precision
for polygons and circles.

Example:
    >>> from gerbonara import graphic_primitives as gp
    >>> c = Canvas(x0=0, y0=0, width_mm=4, height_mm=2, px_per_mm=10)
    >>> layer = c.blank()
    >>> c.draw_primitive(layer, gp.Line(1, 1, 3, 1, width=0.4))
    >>> layer.shape, int(layer.sum())   # a 2 mm x 0.4 mm stroke with round caps: 92.6 px
    ((20, 40), 92)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from gerbonara import graphic_primitives as gp
from gerbonara.utils import MM

_SHIFT = 4
_ONE = 1 << _SHIFT
_SUPER = 4  # sub-pixels per pixel side when filling


@dataclass(frozen=True)
class Canvas:
    """A pixel grid over the board: ``(x0, y0)`` is the lower-left corner in mm."""

    x0: float
    y0: float
    width_mm: float
    height_mm: float
    px_per_mm: float

    @property
    def shape(self) -> tuple[int, int]:
        return max(1, math.ceil(self.height_mm * self.px_per_mm)), max(1, math.ceil(self.width_mm * self.px_per_mm))

    def blank(self) -> np.ndarray:
        return np.zeros(self.shape, np.uint8)

    def px(self, x: float, y: float) -> tuple[float, float]:
        """Board mm -> image pixel coordinates (column, row), continuous."""
        return (x - self.x0) * self.px_per_mm, (self.y0 + self.height_mm - y) * self.px_per_mm

    def window(self, x0: float, y0: float, x1: float, y1: float) -> tuple[Canvas, int, int]:
        """A sub-canvas on the same pixel grid covering the mm box, and its (row, col) offset here."""
        h, w = self.shape
        c0 = min(max(0, math.floor((x0 - self.x0) * self.px_per_mm) - 1), w - 1)
        c1 = min(w, max(c0 + 1, math.ceil((x1 - self.x0) * self.px_per_mm) + 1))
        top = self.y0 + self.height_mm
        r0 = min(max(0, math.floor((top - y1) * self.px_per_mm) - 1), h - 1)
        r1 = min(h, max(r0 + 1, math.ceil((top - y0) * self.px_per_mm) + 1))
        sub = Canvas(self.x0 + c0 / self.px_per_mm, top - r1 / self.px_per_mm, (c1 - c0) / self.px_per_mm,
                     (r1 - r0) / self.px_per_mm, self.px_per_mm)
        return sub, r0, c0

    def _fill(self, layer: np.ndarray, polygons: list[np.ndarray], v: int) -> None:
        """Set the pixels at least half covered by the polygons (pixel-corner coordinates).

        cv2.fillPoly alone also sets every pixel its outline touches, which makes a 5-px trace come
        out 6 px wide; drawing at 4x inside the shapes' bounding box and keeping pixels with at least
        half their sub-pixels set removes that bias.
        """
        polygons = [q for q in polygons if len(q) >= 3]
        if not polygons:
            return
        allp = np.concatenate(polygons)
        h, w = layer.shape
        x0, y0 = max(0, math.floor(allp[:, 0].min())), max(0, math.floor(allp[:, 1].min()))
        x1, y1 = min(w, math.ceil(allp[:, 0].max())), min(h, math.ceil(allp[:, 1].max()))
        if x1 <= x0 or y1 <= y0:
            return
        # big shapes (copper pours) are drawn at lower supersampling: their edges matter less than their memory
        s = _SUPER if (x1 - x0) * (y1 - y0) < 1_000_000 else 2 if (x1 - x0) * (y1 - y0) < 16_000_000 else 1
        local = np.zeros(((y1 - y0) * s, (x1 - x0) * s), np.uint8)
        pts = [np.round(((q - (x0, y0)) * s - 0.5) * _ONE).astype(np.int32) for q in polygons]
        for q in pts:  # one call each: fillPoly XORs the overlaps of polygons drawn together
            cv2.fillPoly(local, [q], 1, cv2.LINE_8, _SHIFT)
        # fillPoly also sets the sub-pixels its outline touches, so "half covered" needs a little more
        # than half the sub-pixels; 9/16 did best in a sweep of widths and angles (tests/test_gerber.py holds a
        # 4-px stroke to 4% of its geometric area at seven angles)
        covered = local.reshape(y1 - y0, s, x1 - x0, s).sum(axis=(1, 3)) > s * s * 9 // 16
        layer[y0:y1, x0:x1][covered] = v

    def _disc(self, x: float, y: float, r_mm: float) -> np.ndarray:
        cx, cy = self.px(x, y)
        r = r_mm * self.px_per_mm
        n = int(min(256, max(12, math.ceil(2 * math.pi * r))))
        t = np.linspace(0, 2 * math.pi, n, endpoint=False)
        return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)

    def draw_primitive(self, layer: np.ndarray, prim, value: int | None = None) -> None:
        """Draw one gerbonara primitive; clear polarity draws 0 unless ``value`` is given."""
        v = (1 if prim.polarity_dark else 0) if value is None else value
        if isinstance(prim, gp.Circle):
            self._fill(layer, [self._disc(prim.x, prim.y, prim.r)], v)
        elif isinstance(prim, gp.Line):
            self._stroke(layer, [(prim.x1, prim.y1), (prim.x2, prim.y2)], prim.width, v)
        elif isinstance(prim, gp.Arc):
            pts = arc_points(prim.x1, prim.y1, prim.x2, prim.y2, prim.cx, prim.cy, prim.clockwise, 0.3 / self.px_per_mm)
            self._stroke(layer, pts, prim.width, v)
        elif isinstance(prim, gp.Rectangle):  # its to_arc_poly() mishandles rotation in gerbonara 1.5
            c, sn = math.cos(prim.rotation), math.sin(prim.rotation)
            hw, hh = prim.w / 2, prim.h / 2
            offsets = ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh))
            corners = [(prim.x + dx * c - dy * sn, prim.y + dx * sn + dy * c) for dx, dy in offsets]
            self._fill(layer, [np.array([self.px(x, y) for x, y in corners])], v)
        else:
            poly = prim if isinstance(prim, gp.ArcPoly) else prim.to_arc_poly()
            outline = polygon_points(poly, 0.3 / self.px_per_mm)
            self._fill(layer, [np.array([self.px(x, y) for x, y in outline])], v)

    def _stroke(self, layer: np.ndarray, pts: list[tuple[float, float]], width_mm: float, v: int) -> None:
        """A circle swept along the path: a quad per segment and a disc at each end."""
        if width_mm * self.px_per_mm < 1:  # hairlines still leave a 1-px trace
            line = np.round((np.array([self.px(x, y) for x, y in pts]) - 0.5) * _ONE).astype(np.int32)
            cv2.polylines(layer, [line], False, v, 1, cv2.LINE_8, _SHIFT)
            return
        half = width_mm / 2
        polys = []
        for (xa, ya), (xb, yb) in itertools.pairwise(pts):
            length = math.hypot(xb - xa, yb - ya)
            if length == 0:
                continue
            nx, ny = -(yb - ya) / length * half, (xb - xa) / length * half
            corners = [(xa + nx, ya + ny), (xb + nx, yb + ny), (xb - nx, yb - ny), (xa - nx, ya - ny)]
            polys.append(np.array([self.px(x, y) for x, y in corners]))
        polys += [self._disc(x, y, half) for x, y in (pts[0], pts[-1])]
        self._fill(layer, polys, v)

    def draw(self, layer: np.ndarray, objects: Iterable, value: int | None = None) -> None:
        """Draw gerbonara graphic objects (any unit) in file order, honouring polarity."""
        for obj in objects:
            for prim in obj.to_primitives(unit=MM):
                self.draw_primitive(layer, prim, value)


def arc_points(x1: float, y1: float, x2: float, y2: float, cx: float, cy: float, clockwise: bool,
               max_error: float) -> list[tuple[float, float]]:
    """Points along a circular arc, no further than ``max_error`` from it."""
    r = math.hypot(x1 - cx, y1 - cy)
    a1, a2 = math.atan2(y1 - cy, x1 - cx), math.atan2(y2 - cy, x2 - cx)
    sweep = (a2 - a1) % (2 * math.pi)  # counter-clockwise, in [0, 2 pi)
    if clockwise:
        sweep -= 2 * math.pi
    if math.isclose(x1, x2) and math.isclose(y1, y2):
        sweep = -2 * math.pi if clockwise else 2 * math.pi  # a full circle
    step = 2 * math.acos(max(-1.0, 1 - max_error / r)) if r > max_error else math.pi / 2
    n = max(2, math.ceil(abs(sweep) / max(step, 1e-3)) + 1)
    return [(cx + r * math.cos(a1 + sweep * t / (n - 1)), cy + r * math.sin(a1 + sweep * t / (n - 1))) for t in range(n)]


def polygon_points(poly: gp.ArcPoly, max_error: float) -> list[tuple[float, float]]:
    """The outline of an ``ArcPoly`` with its arcs replaced by short straight segments."""
    out: list[tuple[float, float]] = []
    for p1, p2, (clockwise, center) in poly.segments:
        if clockwise is None:
            out.append(p1)
        else:
            out.extend(arc_points(*p1, *p2, *center, clockwise, max_error)[:-1])
    return out
