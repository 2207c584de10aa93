"""The parts catalogue of the procedural boards: footprints (pads, drills) and bodies, in millimetres.

Example:
    >>> import numpy as np
    >>> part = make_part(np.random.default_rng(0))
    >>> part.kind in ("resistor", "capacitor", "inductor", "transistor", "ic", "connector"), len(part.pads) >= 2
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcbseg.data.synth.appearance import FINISHES, jitter

# Two-terminal chip sizes in mm (length, width).
CHIP_SIZES = [(1.0, 0.5), (1.6, 0.8), (2.0, 1.25), (3.2, 1.6)]


@dataclass
class Part:
    kind: str  # the finest class name: resistor, capacitor, inductor, transistor, ic, connector
    prefix: str  # reference designator letter(s)
    pads: list[tuple[float, float, float, float]]  # local mm rects (cx, cy, w, h)
    drills: list[tuple[float, float, float]]  # local mm circles (cx, cy, d) for through-hole pads
    shapes: list[tuple[str, tuple, tuple[float, float, float], bool]]  # (rect|circle, geom, rgb, metal)
    extent: tuple[float, float]  # half-size of everything in local mm, for placement
    body: tuple[float, float]  # half-size of the body, for the silkscreen outline



def _chip(rng: np.random.Generator, kind: str) -> Part:
    length, width = CHIP_SIZES[rng.integers(len(CHIP_SIZES))]
    cap = min(0.3, length * 0.2)
    pad_w, pad_h = length * 0.5, width * 1.15
    metal = jitter(rng, (0.78, 0.78, 0.76), 0.05)
    if kind == "resistor":
        body = jitter(rng, (0.09, 0.09, 0.10), 0.3)
    elif kind == "capacitor":
        body = jitter(rng, rng.choice([(0.62, 0.48, 0.32), (0.55, 0.50, 0.45), (0.45, 0.36, 0.26)]), 0.08)
    else:  # ferrite bead / chip inductor
        body = jitter(rng, (0.28, 0.28, 0.30), 0.1)
    shapes = [("rect", (0.0, 0.0, length, width), body, False)]
    for sx in (-1, 1):
        shapes.append(("rect", (sx * (length - cap) / 2, 0.0, cap, width), metal, True))
    pads = [(sx * length / 2, 0.0, pad_w, pad_h) for sx in (-1, 1)]
    prefix = {"resistor": "R", "capacitor": "C", "inductor": "L"}[kind]
    return Part(kind, prefix, pads, [], shapes, (length / 2 + pad_w / 2, pad_h / 2), (length / 2, width / 2))


def _power_inductor(rng: np.random.Generator) -> Part:
    s = float(rng.choice([3.0, 4.0, 5.0, 6.0]))
    body = jitter(rng, (0.32, 0.32, 0.33), 0.12)
    pads = [(sx * s * 0.38, 0.0, s * 0.3, s * 0.8) for sx in (-1, 1)]
    shapes = [("rect", (0.0, 0.0, s, s), body, False), ("circle", (0.0, 0.0, s * 0.7), jitter(rng, body, 0.15), False)]
    return Part("inductor", "L", pads, [], shapes, (s * 0.55, s / 2), (s / 2, s / 2))


def _gullwing(rng: np.random.Generator, kind: str, body_w: float, body_l: float, pitch: float,
              n_side: int, sides: int, lead_len: float, lead_w: float) -> Part:
    """Packages with leads along two (SOIC, SOT) or four (QFP) sides."""
    body = jitter(rng, (0.10, 0.10, 0.11), 0.25)
    metal = jitter(rng, (0.75, 0.75, 0.74), 0.06)
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
    shapes.append(("circle", (-body_w / 2 + dot * 2, -body_l / 2 + dot * 2, dot * 2), jitter(rng, body, 0.6), False))
    ext = max(body_w, body_l) / 2 + lead_len * 0.8 + pad_len / 2
    return Part(kind, "U" if kind == "ic" else "Q", pads, [], shapes, (ext, ext), (body_w / 2, body_l / 2))


def _sot23(rng: np.random.Generator) -> Part:
    body = jitter(rng, (0.10, 0.10, 0.11), 0.25)
    metal = jitter(rng, (0.75, 0.75, 0.74), 0.06)
    leads = [(-0.95, 0.95), (0.95, 0.95), (0.0, -0.95)]
    shapes: list = [("rect", (0.0, 0.0, 2.9, 1.3), body, False)]
    pads = []
    for x, y in leads:
        sign = 1 if y > 0 else -1
        shapes.append(("rect", (x, sign * 0.95, 0.4, 0.6), metal, True))
        pads.append((x, sign * 1.1, 0.6, 0.9))
    return Part("transistor", "Q", pads, [], shapes, (1.6, 1.6), (1.45, 0.65))


def _electrolytic(rng: np.random.Generator) -> Part:
    d = float(rng.choice([4.0, 5.0, 6.3, 8.0]))
    base = jitter(rng, (0.12, 0.12, 0.12), 0.2)
    can = jitter(rng, (0.72, 0.73, 0.76), 0.06)
    stripe = jitter(rng, rng.choice([(0.08, 0.08, 0.10), (0.10, 0.20, 0.55)]), 0.2)
    shapes = [
        ("rect", (0.0, 0.0, d + 0.3, d + 0.3), base, False),
        ("circle", (0.0, 0.0, d), can, True),
        ("rect", (-d * 0.3, 0.0, d * 0.22, d * 0.7), stripe, False),
        ("rect", (d * 0.08, 0.0, d * 0.45, d * 0.05), jitter(rng, can, 0.25), True),  # pressure vent
        ("rect", (d * 0.08, 0.0, d * 0.05, d * 0.45), jitter(rng, can, 0.25), True),
    ]
    pads = [(sx * d * 0.45, 0.0, d * 0.35, d * 0.3) for sx in (-1, 1)]
    return Part("capacitor", "C", pads, [], shapes, (d * 0.65, d / 2 + 0.2), (d / 2 + 0.15, d / 2 + 0.15))


def _header(rng: np.random.Generator) -> Part:
    rows, n = int(rng.choice([1, 2])), int(rng.integers(2, 9))
    pitch = 2.54
    housing = jitter(rng, rng.choice([(0.08, 0.08, 0.08), (0.88, 0.86, 0.80), (0.85, 0.80, 0.62)]), 0.05)
    pin = jitter(rng, FINISHES["enig"], 0.1)
    w, h = n * pitch, rows * pitch
    shapes: list = [("rect", (0.0, 0.0, w, h), housing, False)]
    pads, drills = [], []
    for r in range(rows):
        for i in range(n):
            x, y = -w / 2 + pitch * (i + 0.5), -h / 2 + pitch * (r + 0.5)
            shapes.append(("rect", (x, y, 0.64, 0.64), pin, True))
            pads.append((x, y, 1.7, 1.7))
            drills.append((x, y, 1.0))
    return Part("connector", "J", pads, drills, shapes, (w / 2 + 0.2, h / 2 + 0.2), (w / 2, h / 2))


def make_part(rng: np.random.Generator) -> Part:
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

