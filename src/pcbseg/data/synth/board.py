"""The procedural board layout: parts on their pads, traces and buses, vias, holes, silkscreen and pours,
rasterised in pixels into hard per-class layers and a label map.

Example:
    >>> import numpy as np
    >>> from pcbseg.taxonomy import get_taxonomy
    >>> board = Board(np.random.default_rng(0), 96, 10.0, get_taxonomy("default"))
    >>> board.place_parts(5); board.label_map().shape
    (96, 96)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pcbseg.data.synth.appearance import BoardLayers
from pcbseg.data.synth.parts import Part, make_part
from pcbseg.taxonomy import Taxonomy

_SHIFT = 4  # cv2 sub-pixel bits: polygons are drawn with 1/16 px precision
_ONE = 1 << _SHIFT


class Board:
    """One board being laid out and rasterised on a square canvas of ``size`` pixels."""

    def __init__(self, rng: np.random.Generator, size: int, ppm: float, taxonomy: Taxonomy):
        self.rng, self.size, self.ppm, self.tax = rng, size, ppm, taxonomy
        self.layers = BoardLayers(size)
        self.occupied = np.zeros((size, size), np.uint8)
        self.parts: list[tuple[Part, tuple[float, float], int]] = []
        self.pins: list[tuple[float, float, float, float]] = []  # (x, y, exit dx, exit dy) in px
        self.comp_rgb = np.zeros((size, size, 3), np.float32)
        self.comp_alpha = np.zeros((size, size), np.uint8)
        self.comp_metal = np.zeros((size, size), np.uint8)
        self.comp_label = np.zeros((size, size), np.uint8)
        self.via_size = (0.8, 0.4)  # ring and drill diameter in mm, drawn per board

    # geometry -----------------------------------------------------------------------------
    def _to_px(self, center: tuple[float, float], rot: int, x: float, y: float) -> tuple[float, float]:
        for _ in range(rot):
            x, y = -y, x
        return center[0] + x * self.ppm, center[1] + y * self.ppm

    def _rect_poly(self, center: tuple[float, float], rot: int, rect: tuple) -> np.ndarray:
        cx, cy, w, h = rect
        pts = [self._to_px(center, rot, cx + dx * w / 2, cy + dy * h / 2) for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        return np.round(np.asarray(pts) * _ONE).astype(np.int32)

    def _circle(self, layer: np.ndarray, xy: tuple[float, float], diameter_px: float, value: int | tuple = 1) -> None:
        c = (int(round(xy[0] * _ONE)), int(round(xy[1] * _ONE)))
        cv2.circle(layer, c, max(int(round(diameter_px / 2 * _ONE)), _ONE // 2), value, -1, cv2.LINE_8, _SHIFT)

    def _free(self, x0: int, y0: int, x1: int, y1: int) -> bool:
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, self.size), min(y1, self.size)
        return x1 > x0 and y1 > y0 and not self.occupied[y0:y1, x0:x1].any()

    def _claim(self, x0: int, y0: int, x1: int, y1: int) -> None:
        self.occupied[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 1

    # layout -------------------------------------------------------------------------------
    def place_parts(self, attempts: int) -> None:
        rng = self.rng
        for _ in range(attempts):
            part = make_part(rng)
            rot = int(rng.integers(4))
            ex, ey = part.extent if rot % 2 == 0 else part.extent[::-1]
            clear = 0.8 * self.ppm
            hx, hy = ex * self.ppm + clear, ey * self.ppm + clear
            if 2 * hx > self.size * 0.6 or 2 * hy > self.size * 0.6:
                continue
            cx, cy = rng.uniform(-hx * 0.5, self.size + hx * 0.5), rng.uniform(-hy * 0.5, self.size + hy * 0.5)
            box = (int(cx - hx), int(cy - hy), int(cx + hx) + 1, int(cy + hy) + 1)
            if not self._free(*box):
                continue
            self._claim(*box)
            self._draw_part(part, (cx, cy), rot)

    def _draw_part(self, part: Part, center: tuple[float, float], rot: int) -> None:
        L = self.layers
        for rect in part.pads:
            poly = self._rect_poly(center, rot, rect)
            cv2.fillPoly(L.pad, [poly], 1, cv2.LINE_8, _SHIFT)
            # Pins leave the part away from its centre: that is where traces attach.
            px, py = self._to_px(center, rot, rect[0], rect[1])
            dx, dy = px - center[0], py - center[1]
            norm = math.hypot(dx, dy) or 1.0
            self.pins.append((px, py, dx / norm, dy / norm))
        for x, y, d in part.drills:
            self._circle(L.hole, self._to_px(center, rot, x, y), d * self.ppm)
        label = self.tax.resolve(part.kind)
        for shape, geom, rgb, metal in part.shapes:
            colour = tuple(float(c) for c in rgb)
            if shape == "rect":
                poly = self._rect_poly(center, rot, geom)
                for layer, value in ((self.comp_rgb, colour), (self.comp_alpha, 1), (self.comp_label, label + 1)):
                    cv2.fillPoly(layer, [poly], value, cv2.LINE_8, _SHIFT)
                cv2.fillPoly(self.comp_metal, [poly], int(metal), cv2.LINE_8, _SHIFT)
            else:
                xy = self._to_px(center, rot, geom[0], geom[1])
                for layer, value in ((self.comp_rgb, colour), (self.comp_alpha, 1), (self.comp_label, label + 1)):
                    self._circle(layer, xy, geom[2] * self.ppm, value)
                self._circle(self.comp_metal, xy, geom[2] * self.ppm, int(metal))
        self.parts.append((part, center, rot))

    def place_tht_rows(self, count: int) -> None:
        """Unpopulated through-hole footprints (headers, test points): pads with drills."""
        rng = self.rng
        for _ in range(count):
            n, pitch = int(rng.integers(2, 8)), 2.54
            vertical = rng.random() < 0.5
            pad_d, drill_d = rng.uniform(1.5, 1.9), rng.uniform(0.8, 1.1)
            length = n * pitch * self.ppm
            x0, y0 = rng.uniform(0, self.size), rng.uniform(0, self.size)
            w, h = (pad_d * self.ppm, length) if vertical else (length, pad_d * self.ppm)
            box = (int(x0 - 4), int(y0 - 4), int(x0 + w + 4), int(y0 + h + 4))
            if not self._free(*box):
                continue
            self._claim(*box)
            square_first = rng.random() < 0.7
            for i in range(n):
                off = (i + 0.5) * pitch * self.ppm
                x, y = (x0 + w / 2, y0 + off) if vertical else (x0 + off, y0 + h / 2)
                if i == 0 and square_first:  # pin 1 is square
                    poly = self._rect_poly((x, y), 0, (0.0, 0.0, pad_d, pad_d))
                    cv2.fillPoly(self.layers.pad, [poly], 1, cv2.LINE_8, _SHIFT)
                else:
                    self._circle(self.layers.pad, (x, y), pad_d * self.ppm)
                self._circle(self.layers.hole, (x, y), drill_d * self.ppm)
                self.pins.append((x, y, *((1.0, 0.0) if vertical else (0.0, 1.0))))

    def _polyline(self, pts: list[tuple[float, float]], width_px: float) -> None:
        arr = np.round(np.asarray(pts) * _ONE).astype(np.int32)
        cv2.polylines(self.layers.trace, [arr], False, 1, max(1, int(round(width_px))), cv2.LINE_8, _SHIFT)

    def _route(self, a: tuple[float, float], b: tuple[float, float]) -> list[tuple[float, float]]:
        """A 45°/90° path: straight, one 45° run, straight (which end goes straight first varies)."""
        dx, dy = b[0] - a[0], b[1] - a[1]
        diag = min(abs(dx), abs(dy))
        sx, sy = math.copysign(1, dx), math.copysign(1, dy)
        straight = ((abs(dx) - diag) * sx, 0.0) if abs(dx) > abs(dy) else (0.0, (abs(dy) - diag) * sy)
        t = self.rng.uniform(0, 1)
        p1 = (a[0] + straight[0] * t, a[1] + straight[1] * t)
        p2 = (p1[0] + diag * sx, p1[1] + diag * sy)
        return [a, p1, p2, b]

    def route_traces(self, count: int, widths_mm: list[float]) -> None:
        rng = self.rng
        if not self.pins:
            return
        for _ in range(count):
            x, y, ex, ey = self.pins[rng.integers(len(self.pins))]
            width = float(rng.choice(widths_mm)) * self.ppm
            stub = rng.uniform(0.5, 2.0) * self.ppm
            start = (x + ex * stub, y + ey * stub)
            if len(self.pins) > 1 and rng.random() < 0.6:
                x2, y2, ex2, ey2 = self.pins[rng.integers(len(self.pins))]
                end = (x2 + ex2 * stub, y2 + ey2 * stub)
                path = [(x, y), *self._route(start, end), (x2, y2)]
            else:
                reach = rng.uniform(3, 20) * self.ppm
                ang = rng.integers(8) * math.pi / 4
                end = (start[0] + math.cos(ang) * reach, start[1] + math.sin(ang) * reach)
                path = [(x, y), *self._route(start, end)]
                if rng.random() < 0.5:
                    self.via_at(end)
            self._polyline(path, width)

    def route_buses(self, count: int) -> None:
        rng = self.rng
        for _ in range(count):
            n = int(rng.integers(3, 9))
            width = float(rng.choice([0.2, 0.25, 0.3])) * self.ppm
            pitch = width + rng.uniform(0.15, 0.35) * self.ppm
            a = (rng.uniform(0, self.size), rng.uniform(0, self.size))
            b = (rng.uniform(0, self.size), rng.uniform(0, self.size))
            centre = self._route(a, b)
            ends_in_vias = rng.random() < 0.4
            for i in range(n):
                path = _offset_polyline(centre, (i - (n - 1) / 2) * pitch)
                self._polyline(path, width)
                if ends_in_vias:
                    self.via_at(path[-1], stagger=i)

    def via_at(self, xy: tuple[float, float], stagger: int = 0) -> None:
        ring, drill = self.via_size
        x, y = xy
        if stagger % 2:
            x += ring * 0.8 * self.ppm
        self._circle(self.layers.via, (x, y), ring * self.ppm)
        self._circle(self.layers.via_drill, (x, y), drill * self.ppm)

    def scatter_vias(self, count: int) -> None:
        for _ in range(count):
            self.via_at((self.rng.uniform(0, self.size), self.rng.uniform(0, self.size)))

    def mounting_holes(self) -> None:
        rng = self.rng
        for _ in range(int(rng.integers(0, 4))):
            d = rng.uniform(2.5, 3.5) * self.ppm
            xy = (rng.uniform(0, self.size), rng.uniform(0, self.size))
            r = int(d * 1.2)
            box = (int(xy[0]) - r, int(xy[1]) - r, int(xy[0]) + r, int(xy[1]) + r)
            if not self._free(*box):
                continue
            self._claim(*box)
            if rng.random() < 0.35:
                self._circle(self.layers.screw, xy, d * 1.7)
            else:
                if rng.random() < 0.6:
                    self._circle(self.layers.pad, xy, d * 1.8)  # plated ring around it
                self._circle(self.layers.hole, xy, d)

    def pour(self, whole: bool = False) -> None:
        """A copper pour with clearance around everything it must not touch: a rectangle, or the ``whole`` board
        (a ground plane, as on most of the shared real boards)."""
        rng, s = self.rng, self.size
        area = np.zeros_like(self.layers.trace)
        if whole:
            area[:] = 1
        else:
            x0, y0 = rng.uniform(-0.2, 0.6, 2) * s
            x1, y1 = x0 + rng.uniform(0.4, 1.2) * s, y0 + rng.uniform(0.4, 1.2) * s
            cv2.rectangle(area, (int(x0), int(y0)), (int(x1), int(y1)), 1, -1)
        L = self.layers
        obstacles = L.trace | L.via | L.pad | L.hole | L.screw | self.comp_alpha
        gap = max(1, int(round(rng.uniform(0.25, 0.5) * self.ppm)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap + 1, 2 * gap + 1))
        L.trace |= area & (1 - cv2.dilate(obstacles, kernel))

    def silkscreen(self, counter: dict[str, int]) -> None:
        rng, L = self.rng, self.layers
        line = max(1, int(round(rng.uniform(0.12, 0.2) * self.ppm)))
        for part, center, rot in self.parts:
            bx, by = part.body
            margin = 0.35
            if rng.random() < 0.8:
                poly = self._rect_poly(center, rot, (0.0, 0.0, 2 * (bx + margin), 2 * (by + margin)))
                cv2.polylines(L.silk, [poly], True, 1, line, cv2.LINE_8, _SHIFT)
            if rng.random() < 0.85:
                counter[part.prefix] = counter.get(part.prefix, 0) + 1
                text = f"{part.prefix}{counter[part.prefix]}"
                ex, ey = part.extent if rot % 2 == 0 else part.extent[::-1]
                side = rng.integers(4)
                off = [(0, -ey - 0.9), (0, ey + 0.9), (-ex - 1.2, 0), (ex + 1.2, 0)][side]
                self._text(text, (center[0] + off[0] * self.ppm, center[1] + off[1] * self.ppm),
                           rng.uniform(0.7, 1.1) * self.ppm, vertical=rot % 2 == 1)
        for _ in range(int(rng.integers(0, 4))):
            words = ["GND", "VCC", "+5V", "3V3", "REV B", "v1.2", "SDA", "SCL", "TX", "RX", "RST", "PWR"]
            self._text(str(rng.choice(words)), (rng.uniform(0, self.size), rng.uniform(0, self.size)),
                       rng.uniform(0.9, 1.8) * self.ppm, vertical=rng.random() < 0.3)
        # Silkscreen is never printed on exposed copper or into holes.
        L.silk &= 1 - (L.pad | L.hole | L.screw | self.layers.via_drill)

    def _text(self, text: str, xy: tuple[float, float], height_px: float, vertical: bool) -> None:
        font = cv2.FONT_HERSHEY_SIMPLEX
        scale = height_px / 22.0
        thick = max(1, int(round(height_px / 7)))
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        patch = np.zeros((th + base + 2 * thick, tw + 2 * thick), np.uint8)
        cv2.putText(patch, text, (thick, th + thick), font, scale, 1, thick, cv2.LINE_8)
        if vertical:
            patch = np.ascontiguousarray(np.rot90(patch))
        h, w = patch.shape
        x0, y0 = int(xy[0] - w / 2), int(xy[1] - h / 2)
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, self.size), min(y0 + h, self.size)
        if xb > xa and yb > ya:
            self.layers.silk[ya:yb, xa:xb] |= patch[ya - y0:yb - y0, xa - x0:xb - x0]

    # rasterise ----------------------------------------------------------------------------
    def label_map(self) -> np.ndarray:
        """Class ids by what a camera sees from above: later rows of this list cover earlier ones."""
        L, t = self.layers, self.tax
        lab = np.full((self.size, self.size), t.resolve("background"), np.uint8)
        for layer, name in (
            (L.trace, "trace"),
            (L.via | L.via_drill, "via"),
            (L.pad, "pad"),
            (L.hole | L.screw, "hole"),
            (L.silk, "silkscreen"),
        ):
            lab[layer > 0] = t.resolve(name)
        comp = self.comp_label > 0
        lab[comp] = self.comp_label[comp] - 1
        return lab



def _offset_polyline(pts: list[tuple[float, float]], offset: float) -> list[tuple[float, float]]:
    """Shift a polyline sideways by ``offset`` px, mitring corners so parallel traces stay parallel."""
    p = np.asarray(pts, np.float64)
    keep = np.r_[True, np.linalg.norm(np.diff(p, axis=0), axis=1) > 1e-6]
    p = p[keep]
    if len(p) < 2:
        return [tuple(map(float, q)) for q in p]
    d = np.diff(p, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    n = np.stack([-d[:, 1], d[:, 0]], axis=1)
    out = [p[0] + n[0] * offset]
    for i in range(1, len(p) - 1):
        bis = n[i - 1] + n[i]
        cos_half = max(np.dot(bis / (np.linalg.norm(bis) or 1.0), n[i]), 0.3)
        out.append(p[i] + bis / (np.linalg.norm(bis) or 1.0) * offset / cos_half)
    out.append(p[-1] + n[-1] * offset)
    return [(float(x), float(y)) for x, y in out]

