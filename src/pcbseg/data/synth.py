"""Procedural circuit-board photos with exact per-pixel labels (OpenCV and NumPy only).

A board is laid out in millimetres (components on their pads, 45°/90° traces and buses, vias,
through-hole pads, mounting holes and screws, silkscreen, copper pours), rasterised at a random
scale into hard per-class label layers, and painted from those same layers, so image and mask are
pixel-aligned by construction. The camera then adds what a phone or microscope photo has: uneven
light, glints on metal, slight rotation and perspective, blur, sensor noise and JPEG artefacts.

Everything random comes from one ``numpy.random.Generator`` seeded by ``seed``: the same seed and
size give byte-identical image and mask.

Example:
    >>> from pcbseg.data.synth import render_board
    >>> image, mask = render_board(seed=0, size=128)
    >>> image.shape, image.dtype.name, mask.shape, int(mask.max()) < 7
    ((128, 128, 3), 'uint8', (128, 128), True)
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from pcbseg import __version__
from pcbseg.data.layout import DatasetLayout, write_image, write_mask
from pcbseg.data.splits import make_splits, write_splits
from pcbseg.jsonfile import write_json
from pcbseg.taxonomy import Taxonomy, get_taxonomy

_SHIFT = 4  # cv2 sub-pixel bits: polygons are drawn with 1/16 px precision
_ONE = 1 << _SHIFT

# RGB in 0..1. Soldermask colours as they photograph, not as named.
_MASK_COLOURS = {
    "green": (0.08, 0.36, 0.16),
    "darkgreen": (0.05, 0.22, 0.11),
    "blue": (0.06, 0.17, 0.45),
    "red": (0.55, 0.07, 0.07),
    "black": (0.07, 0.07, 0.08),
    "white": (0.86, 0.86, 0.83),
    "purple": (0.30, 0.11, 0.42),
}
_FINISHES = {
    "hasl": (0.80, 0.80, 0.80),
    "enig": (0.85, 0.68, 0.35),
    "copper": (0.80, 0.47, 0.30),
}
_COPPER = np.array((0.80, 0.50, 0.28), np.float32)

# Two-terminal chip sizes in mm (length, width).
_CHIP_SIZES = [(1.0, 0.5), (1.6, 0.8), (2.0, 1.25), (3.2, 1.6)]


@dataclass
class _Layers:
    """Hard 0/1 layers in canvas pixels; the label map and the image are both painted from these."""

    size: int | tuple[int, int]  # side of a square canvas, or (height, width)
    trace: np.ndarray = field(init=False)  # copper under soldermask (traces, pours)
    via: np.ndarray = field(init=False)  # via annular rings
    via_drill: np.ndarray = field(init=False)
    pad: np.ndarray = field(init=False)  # exposed copper: SMD and through-hole pads
    hole: np.ndarray = field(init=False)  # through-hole pad drills, mounting holes
    screw: np.ndarray = field(init=False)
    silk: np.ndarray = field(init=False)
    keepout: np.ndarray = field(init=False)  # where a copper pour must leave clearance

    def __post_init__(self) -> None:
        for name in ("trace", "via", "via_drill", "pad", "hole", "screw", "silk", "keepout"):
            shape = (self.size, self.size) if isinstance(self.size, int) else self.size
            setattr(self, name, np.zeros(shape, np.uint8))


@dataclass
class _Part:
    kind: str  # the finest class name: resistor, capacitor, inductor, transistor, ic, connector
    prefix: str  # reference designator letter(s)
    pads: list[tuple[float, float, float, float]]  # local mm rects (cx, cy, w, h)
    drills: list[tuple[float, float, float]]  # local mm circles (cx, cy, d) for through-hole pads
    shapes: list[tuple[str, tuple, tuple[float, float, float], bool]]  # (rect|circle, geom, rgb, metal)
    extent: tuple[float, float]  # half-size of everything in local mm, for placement
    body: tuple[float, float]  # half-size of the body, for the silkscreen outline


def _jitter(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float) -> tuple[float, float, float]:
    c = np.clip(np.asarray(rgb) * (1 + rng.uniform(-amount, amount, 3)), 0, 1)
    return (float(c[0]), float(c[1]), float(c[2]))


def _chip(rng: np.random.Generator, kind: str) -> _Part:
    length, width = _CHIP_SIZES[rng.integers(len(_CHIP_SIZES))]
    cap = min(0.3, length * 0.2)
    pad_w, pad_h = length * 0.5, width * 1.15
    metal = _jitter(rng, (0.78, 0.78, 0.76), 0.05)
    if kind == "resistor":
        body = _jitter(rng, (0.09, 0.09, 0.10), 0.3)
    elif kind == "capacitor":
        body = _jitter(rng, rng.choice([(0.62, 0.48, 0.32), (0.55, 0.50, 0.45), (0.45, 0.36, 0.26)]), 0.08)
    else:  # ferrite bead / chip inductor
        body = _jitter(rng, (0.28, 0.28, 0.30), 0.1)
    shapes = [("rect", (0.0, 0.0, length, width), body, False)]
    for sx in (-1, 1):
        shapes.append(("rect", (sx * (length - cap) / 2, 0.0, cap, width), metal, True))
    pads = [(sx * length / 2, 0.0, pad_w, pad_h) for sx in (-1, 1)]
    prefix = {"resistor": "R", "capacitor": "C", "inductor": "L"}[kind]
    return _Part(kind, prefix, pads, [], shapes, (length / 2 + pad_w / 2, pad_h / 2), (length / 2, width / 2))


def _power_inductor(rng: np.random.Generator) -> _Part:
    s = float(rng.choice([3.0, 4.0, 5.0, 6.0]))
    body = _jitter(rng, (0.32, 0.32, 0.33), 0.12)
    pads = [(sx * s * 0.38, 0.0, s * 0.3, s * 0.8) for sx in (-1, 1)]
    shapes = [("rect", (0.0, 0.0, s, s), body, False), ("circle", (0.0, 0.0, s * 0.7), _jitter(rng, body, 0.15), False)]
    return _Part("inductor", "L", pads, [], shapes, (s * 0.55, s / 2), (s / 2, s / 2))


def _gullwing(rng: np.random.Generator, kind: str, body_w: float, body_l: float, pitch: float,
              n_side: int, sides: int, lead_len: float, lead_w: float) -> _Part:
    """Packages with leads along two (SOIC, SOT) or four (QFP) sides."""
    body = _jitter(rng, (0.10, 0.10, 0.11), 0.25)
    metal = _jitter(rng, (0.75, 0.75, 0.74), 0.06)
    shapes: list = [("rect", (0.0, 0.0, body_w, body_l), body, False)]
    pads: list[tuple[float, float, float, float]] = []
    span = (n_side - 1) * pitch
    pad_len = lead_len * 1.6
    for side in range(sides):
        for i in range(n_side):
            along = -span / 2 + i * pitch
            half = (body_w if side % 2 == 0 else body_l) / 2
            out = half + lead_len / 2
            pad_out = half + lead_len * 0.8
            sign = 1 if side < 2 else -1
            if side % 2 == 0:
                lead = (sign * out, along, lead_len, lead_w)
                pad = (sign * pad_out, along, pad_len, lead_w * 1.5)
            else:
                lead = (along, sign * out, lead_w, lead_len)
                pad = (along, sign * pad_out, lead_w * 1.5, pad_len)
            shapes.append(("rect", lead, metal, True))
            pads.append(pad)
    # Pin-1 dimple: a slightly lighter disc moulded into the body.
    dot = min(body_w, body_l) * 0.12
    shapes.append(("circle", (-body_w / 2 + dot * 2, -body_l / 2 + dot * 2, dot * 2), _jitter(rng, body, 0.6), False))
    ext = max(body_w, body_l) / 2 + lead_len * 0.8 + pad_len / 2
    return _Part(kind, "U" if kind == "ic" else "Q", pads, [], shapes, (ext, ext), (body_w / 2, body_l / 2))


def _sot23(rng: np.random.Generator) -> _Part:
    body = _jitter(rng, (0.10, 0.10, 0.11), 0.25)
    metal = _jitter(rng, (0.75, 0.75, 0.74), 0.06)
    leads = [(-0.95, 0.95), (0.95, 0.95), (0.0, -0.95)]
    shapes: list = [("rect", (0.0, 0.0, 2.9, 1.3), body, False)]
    pads = []
    for x, y in leads:
        sign = 1 if y > 0 else -1
        shapes.append(("rect", (x, sign * 0.95, 0.4, 0.6), metal, True))
        pads.append((x, sign * 1.1, 0.6, 0.9))
    return _Part("transistor", "Q", pads, [], shapes, (1.6, 1.6), (1.45, 0.65))


def _electrolytic(rng: np.random.Generator) -> _Part:
    d = float(rng.choice([4.0, 5.0, 6.3, 8.0]))
    base = _jitter(rng, (0.12, 0.12, 0.12), 0.2)
    can = _jitter(rng, (0.72, 0.73, 0.76), 0.06)
    stripe = _jitter(rng, rng.choice([(0.08, 0.08, 0.10), (0.10, 0.20, 0.55)]), 0.2)
    shapes = [
        ("rect", (0.0, 0.0, d + 0.3, d + 0.3), base, False),
        ("circle", (0.0, 0.0, d), can, True),
        ("rect", (-d * 0.3, 0.0, d * 0.22, d * 0.7), stripe, False),
        ("rect", (d * 0.08, 0.0, d * 0.45, d * 0.05), _jitter(rng, can, 0.25), True),  # pressure vent
        ("rect", (d * 0.08, 0.0, d * 0.05, d * 0.45), _jitter(rng, can, 0.25), True),
    ]
    pads = [(sx * d * 0.45, 0.0, d * 0.35, d * 0.3) for sx in (-1, 1)]
    return _Part("capacitor", "C", pads, [], shapes, (d * 0.65, d / 2 + 0.2), (d / 2 + 0.15, d / 2 + 0.15))


def _header(rng: np.random.Generator) -> _Part:
    rows, n = int(rng.choice([1, 2])), int(rng.integers(2, 9))
    pitch = 2.54
    housing = _jitter(rng, rng.choice([(0.08, 0.08, 0.08), (0.88, 0.86, 0.80), (0.85, 0.80, 0.62)]), 0.05)
    pin = _jitter(rng, _FINISHES["enig"], 0.1)
    w, h = n * pitch, rows * pitch
    shapes: list = [("rect", (0.0, 0.0, w, h), housing, False)]
    pads, drills = [], []
    for r in range(rows):
        for i in range(n):
            x, y = -w / 2 + pitch * (i + 0.5), -h / 2 + pitch * (r + 0.5)
            shapes.append(("rect", (x, y, 0.64, 0.64), pin, True))
            pads.append((x, y, 1.7, 1.7))
            drills.append((x, y, 1.0))
    return _Part("connector", "J", pads, drills, shapes, (w / 2 + 0.2, h / 2 + 0.2), (w / 2, h / 2))


def _make_part(rng: np.random.Generator) -> _Part:
    r = rng.random()
    if r < 0.30:
        return _chip(rng, "resistor")
    if r < 0.55:
        return _chip(rng, "capacitor")
    if r < 0.60:
        return _chip(rng, "inductor")
    if r < 0.65:
        return _power_inductor(rng)
    if r < 0.74:
        return _sot23(rng)
    if r < 0.82:
        n = int(rng.choice([4, 7, 8]))
        return _gullwing(rng, "ic", 3.9, n * 1.27 + 0.3, 1.27, n, 2, 1.0, 0.42)
    if r < 0.86:
        n, pitch = [(8, 0.8), (11, 0.8), (12, 0.5), (16, 0.5)][rng.integers(4)]
        s = n * pitch + 1.0
        return _gullwing(rng, "ic", s, s, pitch, n, 4, 1.0, pitch * 0.55)
    if r < 0.92:
        return _electrolytic(rng)
    return _header(rng)


class _Board:
    """One board being laid out and rasterised on a square canvas of ``size`` pixels."""

    def __init__(self, rng: np.random.Generator, size: int, ppm: float, taxonomy: Taxonomy):
        self.rng, self.size, self.ppm, self.tax = rng, size, ppm, taxonomy
        self.layers = _Layers(size)
        self.occupied = np.zeros((size, size), np.uint8)
        self.parts: list[tuple[_Part, tuple[float, float], int]] = []
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
            part = _make_part(rng)
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

    def _draw_part(self, part: _Part, center: tuple[float, float], rot: int) -> None:
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

    def pour(self) -> None:
        """A copper pour with clearance around everything it must not touch."""
        rng, s = self.rng, self.size
        x0, y0 = rng.uniform(-0.2, 0.6, 2) * s
        x1, y1 = x0 + rng.uniform(0.4, 1.2) * s, y0 + rng.uniform(0.4, 1.2) * s
        area = np.zeros_like(self.layers.trace)
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


def _smooth_field(rng: np.random.Generator, size: int | tuple[int, int], cells: int, dtype=np.float32) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled smoothly to ``size`` (side, or (h, w))."""
    h, w = (size, size) if isinstance(size, int) else size
    grid = rng.random((cells, cells)).astype(dtype)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _soft(layer: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(layer.astype(np.float32), (0, 0), sigma)


def _paint(board: _Board, rng: np.random.Generator, tented: bool | None = None) -> np.ndarray:
    """Paint a photo-like RGB float image in [0, 1] from the board's layers (any height and width).

    ``tented``: whether soldermask covers the vias; None draws it (55% tented).
    """
    L, ppm = board.layers, board.ppm
    shape = L.trace.shape
    s = max(shape)
    mask_name = str(rng.choice(list(_MASK_COLOURS), p=[0.34, 0.1, 0.18, 0.1, 0.1, 0.08, 0.1]))
    mask_rgb = np.array(_jitter(rng, _MASK_COLOURS[mask_name], 0.12), np.float32)
    finish = np.array(_jitter(rng, _FINISHES[str(rng.choice(list(_FINISHES), p=[0.45, 0.4, 0.15]))], 0.06), np.float32)
    silk_rgb = np.array((0.08, 0.08, 0.08) if mask_name == "white" else
                        _jitter(rng, (0.93, 0.93, 0.9) if rng.random() < 0.85 else (0.9, 0.85, 0.4), 0.04), np.float32)

    edge = max(0.45, ppm * 0.04)  # how soft copper and print edges are, in px
    img = np.empty((*shape, 3), np.float32)
    img[:] = mask_rgb * (0.9 + 0.2 * _smooth_field(rng, shape, 6))[..., None]
    img += (rng.standard_normal((*shape, 1)).astype(np.float32) * 0.012)  # mask texture

    # Copper under the mask shows as a lighter, warmer tint and stands slightly proud.
    under = mask_rgb * rng.uniform(0.55, 0.75) + _COPPER * rng.uniform(0.15, 0.3) + rng.uniform(0.02, 0.08)
    drawn = rng.random() < 0.55  # drawn even when given, so a seed paints the same board either way
    tented = drawn if tented is None else tented
    copper = L.trace | (L.via if tented else 0)
    a = _soft(copper, edge)[..., None]
    img = img * (1 - a) + under * a

    # Exposed metal: pads, and via rings unless the vias are tented.
    metal = L.pad | (0 if tented else L.via)
    grain = 1 + 0.12 * (_smooth_field(rng, shape, max(4, s // 6)) - 0.5)
    a = _soft(metal, edge)[..., None]
    img = img * (1 - a) + (finish * grain[..., None]) * a

    # Relief: light from one side on a blurred height map.
    height = _soft(copper * 0.6 + metal + L.silk * 0.4, max(1.0, ppm * 0.08))
    gy, gx = np.gradient(height)
    ang = rng.uniform(0, 2 * math.pi)
    img += (gx * math.cos(ang) + gy * math.sin(ang))[..., None] * rng.uniform(0.3, 0.7)

    a = _soft(L.silk, edge * 0.8)[..., None] * rng.uniform(0.8, 0.97)
    img = img * (1 - a) + silk_rgb * a

    # Screws: a metal head with a cross recess.
    a = _soft(L.screw, edge)[..., None]
    screw_rgb = np.array(_jitter(rng, (0.62, 0.62, 0.64), 0.1), np.float32)
    img = img * (1 - a) + screw_rgb * (0.85 + 0.3 * _smooth_field(rng, shape, 5))[..., None] * a
    if L.screw.any():
        cross = cv2.morphologyEx(L.screw, cv2.MORPH_ERODE, np.ones((max(3, int(ppm)), max(3, int(ppm))), np.uint8))
        bar = max(1, int(ppm * 0.35))
        slot = cv2.erode(cross, np.ones((1, bar * 6), np.uint8)) | cv2.erode(cross, np.ones((bar * 6, 1), np.uint8))
        slot = cv2.dilate(slot, np.ones((bar, bar), np.uint8)) & cross
        img *= (1 - 0.6 * _soft(slot, 0.7))[..., None]

    # A tented via's drill shows as a dimple in the mask; open drills go through the board: dark.
    if tented:
        img *= (1 - rng.uniform(0.25, 0.45) * _soft(L.via_drill, edge))[..., None]
    holes = L.hole | (0 if tented else L.via_drill)
    a = _soft(holes, edge * 0.8)[..., None]
    depth = np.array(_jitter(rng, (0.05, 0.05, 0.05), 0.5), np.float32)
    img = img * (1 - a) + depth * a

    # Components: soft contact shadow, then the bodies with a bevel and their own light.
    shadow = np.roll(board.comp_alpha, (int(ppm * 0.25), int(ppm * 0.3)), axis=(0, 1))
    img *= (1 - 0.55 * _soft(shadow, max(1.0, ppm * 0.35)))[..., None]
    if board.comp_alpha.any():
        dist = cv2.distanceTransform(board.comp_alpha, cv2.DIST_L2, 3)
        bevel = 0.75 + 0.25 * np.clip(dist / max(1.0, ppm * 0.25), 0, 1)
        comp = board.comp_rgb * bevel[..., None] * (0.9 + 0.2 * _smooth_field(rng, shape, 8))[..., None]
        comp += rng.standard_normal((*shape, 1)).astype(np.float32) * 0.015
        a = _soft(board.comp_alpha, edge * 0.7)[..., None]
        img = img * (1 - a) + comp * a

    # Uneven light: a tilted plane and a vignette, multiplied in.
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32) / s - 0.5
    ang = rng.uniform(0, 2 * math.pi)
    light = 1 + rng.uniform(0.1, 0.4) * (xx * math.cos(ang) + yy * math.sin(ang)) - rng.uniform(0, 0.5) * (xx**2 + yy**2)
    img *= (light * rng.uniform(0.85, 1.15))[..., None]

    # Glints where metal catches the light.
    shiny = (metal | board.comp_metal | L.screw).astype(np.float32)
    t = rng.uniform(0.55, 0.8)
    glint = np.clip((_smooth_field(rng, shape, max(6, s // 10)) - t) / (1 - t), 0, 1) ** 2
    img += (glint * shiny * rng.uniform(0.4, 0.9))[..., None]
    return img


def _camera(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, out: int, ignore: int) -> tuple[np.ndarray, np.ndarray]:
    """Small rotation/perspective, crop to ``out``, then blur, sensor noise and JPEG artefacts."""
    s = img.shape[0]
    m = (s - out) / 2
    src = np.float32([[m, m], [m + out, m], [m + out, m + out], [m, m + out]])
    ang = math.radians(rng.uniform(-4, 4))
    c = s / 2
    rot = np.float32([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    src = (src - c) @ rot.T + c + rng.uniform(-0.025, 0.025, (4, 2)).astype(np.float32) * out
    dst = np.float32([[0, 0], [out, 0], [out, out], [0, out]])
    h = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(img, h, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lab = cv2.warpPerspective(lab, h, (out, out), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=ignore)

    return _sensor(rng, img), lab


def _sensor(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Lens blur, sensor noise, sometimes a monochrome camera, and JPEG artefacts: float RGB -> uint8."""
    sigma = rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.uniform(0.004, 0.03)
    img = img + rng.standard_normal(img.shape).astype(np.float32) * noise
    if rng.random() < 0.1:  # monochrome industrial camera
        img[:] = img.mean(axis=2, keepdims=True)
    rgb = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if rng.random() < 0.7:
        q = int(rng.integers(40, 96))
        _, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(rgb)


BoardLayers = _Layers


def paint(layers: BoardLayers, px_per_mm: float, rng: np.random.Generator, comp_alpha: np.ndarray | None = None,
          comp_rgb: np.ndarray | None = None, comp_metal: np.ndarray | None = None,
          tented: bool | None = None) -> np.ndarray:
    """The synthetic boards' appearance model applied to given layers: float RGB in [0, 1].

    Soldermask over copper, exposed pad finish, silkscreen, drills, component bodies (``comp_alpha``
    0/1, ``comp_rgb`` colour, ``comp_metal`` shiny parts), relief and uneven light. ``tented``
    covers the ``via`` layer with soldermask (None: drawn at random). Used by the Gerber importer
    so its renders look like the procedural boards.
    """
    shape = layers.trace.shape
    zeros = np.zeros(shape, np.uint8)
    board = SimpleNamespace(layers=layers, ppm=px_per_mm,
                            comp_alpha=zeros if comp_alpha is None else comp_alpha,
                            comp_rgb=np.zeros((*shape, 3), np.float32) if comp_rgb is None else comp_rgb,
                            comp_metal=zeros if comp_metal is None else comp_metal)
    return _paint(board, rng, tented)


def camera(rng: np.random.Generator, img: np.ndarray, labels: np.ndarray, out: int, ignore: int) -> tuple[np.ndarray, np.ndarray]:
    """Small rotation/perspective of a square canvas, centre crop to ``out``, blur, noise, JPEG."""
    return _camera(rng, img, labels, out, ignore)


def sensor(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Blur, noise and JPEG only (no geometry): float RGB in [0, 1] -> uint8."""
    return _sensor(rng, img)


def render_board(seed: int, size: int = 384, taxonomy: str | Taxonomy = "default",
                 px_per_mm: tuple[float, float] = (6.0, 16.0)) -> tuple[np.ndarray, np.ndarray]:
    """Render one board photo and its label mask.

    Args:
        seed: everything random follows from it; same seed, same bytes.
        size: output side in pixels (square).
        taxonomy: ``"default"``, ``"fine"`` or a :class:`~pcbseg.taxonomy.Taxonomy`.
        px_per_mm: range the board's scale is drawn from.

    Returns:
        ``(image, mask)``: ``size x size x 3`` RGB uint8 and ``size x size`` uint8 class ids
        (``taxonomy.ignore_index`` where the camera saw past the rendered area).

    Example:
        >>> image, mask = render_board(seed=3, size=96, taxonomy="fine")
        >>> bool((mask == render_board(seed=3, size=96, taxonomy="fine")[1]).all())
        True
    """
    tax = get_taxonomy(taxonomy) if isinstance(taxonomy, str) else taxonomy
    rng = np.random.default_rng(seed)
    ppm = float(rng.uniform(*px_per_mm))
    canvas = int(math.ceil(size * 1.2)) + 8  # margin for rotation and perspective
    board = _Board(rng, canvas, ppm, tax)
    area_mm2 = (canvas / ppm) ** 2
    board.via_size = (rng.uniform(0.6, 1.0), rng.uniform(0.3, 0.45))
    # Big footprints first: they would rarely find room once the small parts are down.
    board.mounting_holes()
    board.place_tht_rows(int(rng.integers(1, 5)))
    board.place_parts(int(area_mm2 / rng.uniform(8, 20)))
    board.route_traces(int(len(board.pins) * rng.uniform(0.2, 0.5)) + 2, [0.2, 0.25, 0.3, 0.4, 0.5, 0.8, 1.2])
    board.route_buses(int(rng.integers(0, 3)))
    board.scatter_vias(int(area_mm2 / rng.uniform(25, 90)))
    if rng.random() < 0.35:
        board.pour()
    board.silkscreen({})
    img = _paint(board, rng)
    return _camera(rng, img, board.label_map(), size, tax.ignore_index)


SYNTH_META = "synth.json"


def board_seed(seed: int, index: int) -> int:
    """The seed of board ``index`` in a dataset made with ``seed``: independent streams per board."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def _write_board(args: tuple[Path, int, int, int, str, str]) -> str:
    images, index, seed, size, taxonomy, ext = args
    cv2.setNumThreads(1)  # one board per process already fills the cores
    image_id = f"board_{index:05d}"
    image, mask = render_board(board_seed(seed, index), size, taxonomy)
    write_image(images / f"{image_id}.{ext}", image)
    write_mask(images.parent / "masks" / f"{image_id}.png", mask)
    return image_id


def _notify(callback: Callable[[str], None] | None, image_id: str) -> str:
    if callback is not None:
        callback(image_id)
    return image_id


def write_dataset(
    out: str | Path,
    num_boards: int = 200,
    size: int = 384,
    seed: int = 0,
    taxonomy: str = "default",
    valid_pct: float = 0.2,
    test_pct: float = 0.0,
    workers: int | None = None,
    image_format: str = "png",
    overwrite: bool = False,
    on_board: Callable[[str], None] | None = None,
) -> Path:
    """Render ``num_boards`` boards into a dataset folder in the canonical layout.

    The folder is built beside ``out`` and moved into place when complete, so an interrupted run
    never leaves a half dataset behind. An existing non-empty ``out`` is refused unless
    ``overwrite``. Each board is its own group in ``splits.csv``. ``on_board`` is called with each
    finished board's id (for progress bars).

    Example:
        >>> import tempfile, pathlib
        >>> root = write_dataset(pathlib.Path(tempfile.mkdtemp()) / "synth", num_boards=3, size=64, workers=1)
        >>> sorted(p.name for p in root.iterdir())
        ['classes.yaml', 'images', 'masks', 'splits.csv', 'synth.json']
    """
    out = Path(out)
    if num_boards < 1:
        raise ValueError(f"num_boards must be at least 1, got {num_boards}")
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    tax = get_taxonomy(taxonomy)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: not empty; pass overwrite=true to replace it, or choose another out=")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        layout = DatasetLayout(tmp)
        layout.images.mkdir()
        layout.masks.mkdir()
        jobs = [(layout.images, i, seed, size, taxonomy, image_format) for i in range(num_boards)]
        workers = workers or os.cpu_count() or 1
        if workers > 1 and num_boards > 4:
            ctx = multiprocessing.get_context("spawn")  # fork after torch/cv2 threads start can hang
            with ProcessPoolExecutor(min(workers, num_boards), mp_context=ctx) as pool:
                done = pool.map(_write_board, jobs, chunksize=max(1, num_boards // (8 * workers)))
                ids = [_notify(on_board, i) for i in done]
        else:
            ids = [_notify(on_board, _write_board(j)) for j in jobs]
        tax.save(layout.classes)
        write_splits(layout.splits, make_splits(ids, valid_pct, test_pct, seed))
        meta = {"generator": "pcbseg.data.synth", "version": __version__, "num_boards": num_boards, "size": size,
                "seed": seed, "taxonomy": taxonomy, "valid_pct": valid_pct, "test_pct": test_pct,
                "image_format": image_format}
        write_json(tmp / SYNTH_META, meta)
        if out.exists():
            shutil.rmtree(out) if overwrite else out.rmdir()  # rmdir: only an empty folder goes
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
