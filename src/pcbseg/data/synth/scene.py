"""What real board photos add to a clean board: the ``photo`` look of the appearance model.

Studied on the photographs in ``shared/data/board-photos``: boards lie on paper, graph paper, wood,
glass or an ESD mat; lot codes, date stamps and marker dots are printed on them that no fab file
knows; glossy soldermask throws a glare band; phones see them from an angle through a lens that
bends straight edges; exposure and white balance wander. Every function here either leaves the
labels alone (it changes colours only) or, like :func:`lens`, warps image and labels together,
labels by nearest neighbour, so masks stay exact.

``classic`` is the look pcbseg's synthetic boards and renders had before; it draws no random
numbers here, so a seed still makes the same bytes in it.

Example:
    >>> rng = np.random.default_rng(0)
    >>> backdrop(rng, (40, 60)).shape, bool(glare(rng, (40, 60)).max() <= 1)
    ((40, 60, 3), True)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

LOOKS = ("classic", "photo")
BACKDROPS = ("plain", "paper", "graph", "wood", "glass", "mat")


def check_look(look: str) -> str:
    if look not in LOOKS:
        raise ValueError(f"look={look!r}: one of {', '.join(LOOKS)}")
    return look


def _field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    grid = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def backdrop(rng: np.random.Generator, shape: tuple[int, int], kind: str | None = None,
             px_per_mm: float | None = None) -> np.ndarray:
    """A surface for around the board, float RGB in [0, 1]: ``kind`` from ``BACKDROPS`` (None: drawn).

    ``px_per_mm`` sizes graph paper's millimetre grid (drawn when not given).
    """
    h, w = shape
    kind = kind or str(rng.choice(BACKDROPS))
    if kind == "plain":
        tone = rng.uniform(0.15, 0.85)
        img = np.full((h, w, 3), tone, np.float32) * (1 + rng.uniform(-0.1, 0.1, 3)).astype(np.float32)
    elif kind in ("paper", "graph"):
        img = np.full((h, w, 3), rng.uniform(0.75, 0.95), np.float32) * np.float32((1, 0.99, 0.95))
        img += rng.standard_normal((h, w, 1)).astype(np.float32) * 0.015
        if kind == "graph":  # millimetre grid, every tenth line heavier
            step = px_per_mm if px_per_mm else rng.uniform(6, 30)
            ink = np.float32((0.35, 0.6, 0.55)) if rng.random() < 0.6 else np.float32((0.7, 0.45, 0.35))
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            for axis in (yy, xx):
                cells = axis / step
                fine = np.abs(cells - np.round(cells)) * step  # px to the nearest line
                heavy = np.abs(cells / 10 - np.round(cells / 10)) * 10 * step
                a = np.maximum(np.clip(1 - fine, 0, 1) * 0.35, np.clip(1.5 - heavy, 0, 1) * 0.6)[..., None]
                img = img * (1 - a) + ink * a
    elif kind == "wood":
        base = np.float32((0.55, 0.38, 0.22)) * rng.uniform(0.6, 1.3)
        ang = rng.uniform(0, math.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        along = xx * math.cos(ang) + yy * math.sin(ang)
        across = -xx * math.sin(ang) + yy * math.cos(ang)
        warp = _field(rng, shape, 4) * rng.uniform(10, 40)
        grain = 0.5 + 0.5 * np.sin((across + warp) / rng.uniform(2, 8) + 0.002 * along)
        img = base * (0.8 + 0.3 * grain)[..., None]
    elif kind == "glass":  # dark, with soft reflections and whatever lies under it
        img = np.full((h, w, 3), rng.uniform(0.05, 0.3), np.float32) + (_field(rng, shape, 3) * 0.25)[..., None]
    elif kind == "mat":  # ESD mats: grey, blue or green, faintly textured
        base = np.float32([(0.35, 0.37, 0.38), (0.2, 0.3, 0.45), (0.2, 0.38, 0.3)][int(rng.integers(3))])
        img = base * (0.9 + 0.2 * _field(rng, shape, 12))[..., None]
    else:
        raise ValueError(f"backdrop kind {kind!r}: one of {', '.join(BACKDROPS)}")
    return np.clip(img, 0, 1).astype(np.float32)


def stray_ink(rng: np.random.Generator, img: np.ndarray, px_per_mm: float, skip: np.ndarray | None = None) -> np.ndarray:
    """Lot codes, date stamps and QC dots that no fab file holds, painted over ``img`` (labels unchanged).

    No ink lands where ``skip`` is set: ink cannot print into a drilled hole, and parts sit on top of it.
    """
    h, w = img.shape[:2]
    ink = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(0, 4))):
        text = "".join(str(rng.choice(list("0123456789ABCDEFGHJKLMNPRSTUVWXYZ-/"))) for _ in range(int(rng.integers(3, 10))))
        height_px = px_per_mm * rng.uniform(0.6, 1.5)
        scale = height_px / 22  # FONT_HERSHEY_SIMPLEX is about 22 px tall at scale 1
        org = (int(rng.integers(0, max(1, w))), int(rng.integers(0, max(1, h))))
        cv2.putText(ink, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 1, max(1, round(height_px / 8)), cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):  # marker dots
        xy = (int(rng.integers(0, max(1, w))), int(rng.integers(0, max(1, h))))
        cv2.circle(ink, xy, max(1, round(px_per_mm * rng.uniform(0.5, 2))), 1, -1)
    if skip is not None:
        ink[skip > 0] = 0
    if not ink.any():
        return img
    colour = np.float32([(0.92, 0.92, 0.88), (0.9, 0.82, 0.3), (0.08, 0.08, 0.08), (0.75, 0.2, 0.2)][int(rng.integers(4))])
    a = cv2.GaussianBlur(ink.astype(np.float32), (0, 0), 0.6)[..., None] * rng.uniform(0.6, 0.95)
    return img * (1 - a) + colour * a


def glare(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A soft glare band across the frame (glossy soldermask under a lamp), 0..1 to be added."""
    h, w = shape
    ang = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = max(h, w)
    dist = (xx - rng.uniform(0, w)) * math.cos(ang) + (yy - rng.uniform(0, h)) * math.sin(ang)
    band = np.exp(-0.5 * (dist / (s * rng.uniform(0.03, 0.15))) ** 2)
    return (band * (0.6 + 0.4 * _field(rng, shape, 5)) * rng.uniform(0.2, 0.7)).astype(np.float32)


def expose(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Exposure (gain, gamma) and white balance (per-channel gains) of a float RGB image."""
    gains = rng.uniform(0.85, 1.15, 3).astype(np.float32) * rng.uniform(0.65, 1.35)
    return np.clip(img * gains, 0, 1) ** np.float32(rng.uniform(0.8, 1.25))


def lens(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, ignore: int) -> tuple[np.ndarray, np.ndarray]:
    """Barrel or pincushion distortion (one radial term), image bilinear and labels nearest, alike."""
    h, w = lab.shape
    k = rng.uniform(-0.15, 0.08)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy, r = (w - 1) / 2, (h - 1) / 2, max(h, w) / 2
    u, v = (xx - cx) / r, (yy - cy) / r
    f = 1 + k * (u * u + v * v)
    mx, my = (u * f * r + cx).astype(np.float32), (v * f * r + cy).astype(np.float32)
    img = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lab = cv2.remap(lab, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=ignore)
    return img, lab
