"""Photo-like renders of a labelled board side, pixel-aligned with their masks by construction.

The appearance is the synthetic boards' (:func:`pcbseg.data.synth.appearance.paint`), with the soldermask
openings of the files deciding which copper is bare: soldermask over copper,
exposed pad finish, silkscreen, drilled holes, component bodies, relief, uneven light, then the
same camera (small perspective, blur, sensor noise, JPEG). Each render draws its own appearance
seed, scale and crop; what lies outside the board is a plain surface (with ``look="photo"``: paper,
graph paper, wood, glass or a mat) and is labelled ignore (or background).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pcbseg.data.gerber.example import write_example_board
    >>> from pcbseg.data.gerber.labels import label_board
    >>> from pcbseg.taxonomy import get_taxonomy
    >>> files, sides = label_board(write_example_board(Path(tempfile.mkdtemp()) / "demo"), px_per_mm=20)
    >>> image, mask = render_crop(sides[0], get_taxonomy("default"), np.random.default_rng(0), size=128)
    >>> image.shape, mask.shape
    ((128, 128, 3), (128, 128))
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pcbseg.data.gerber.labels import SideLabels
from pcbseg.data.synth.appearance import BoardLayers, camera, paint, sensor
from pcbseg.data.synth.scene import backdrop
from pcbseg.taxonomy import Taxonomy

# Body colours by kind (RGB 0..1): chip resistors black, MLCCs tan, plastic ICs near-black,
# connectors off-white or black, inductors grey.
_BODY_COLOURS = {
    "resistor": [(0.07, 0.07, 0.07), (0.12, 0.16, 0.35)],
    "capacitor": [(0.72, 0.58, 0.40), (0.55, 0.42, 0.28), (0.82, 0.66, 0.18)],
    "inductor": [(0.28, 0.28, 0.30), (0.12, 0.12, 0.12)],
    "transistor": [(0.08, 0.08, 0.09), (0.15, 0.15, 0.16)],
    "ic": [(0.08, 0.08, 0.09), (0.12, 0.12, 0.13)],
    "connector": [(0.9, 0.9, 0.86), (0.1, 0.1, 0.1), (0.85, 0.75, 0.55)],
}
_LAYERS = ("board", "trace", "via", "via_drill", "pad", "hole", "silk")


def _component_colours(side: SideLabels, rng: np.random.Generator) -> np.ndarray:
    lut = np.zeros((len(side.components) + 1, 3), np.float32)
    for k, comp in enumerate(side.components, start=1):
        options = _BODY_COLOURS.get(comp.kind, _BODY_COLOURS["ic"])
        base = np.array(options[int(rng.integers(len(options)))], np.float32)
        lut[k] = np.clip(base * (1 + rng.uniform(-0.1, 0.1, 3)), 0, 1)
    return lut


def _paint_window(side: SideLabels, taxonomy: Taxonomy, outside: str, rng: np.random.Generator, window: tuple[int, int, int, int],
                  out_shape: tuple[int, int], px_per_mm: float, look: str = "classic") -> tuple[np.ndarray, np.ndarray]:
    """Paint the base-resolution window (r0, c0, r1, c1; may reach past the canvas) resampled to ``out_shape``."""
    r0, c0, r1, c1 = window
    h, w = side.board.shape
    pad = (max(0, -r0), max(0, r1 - h), max(0, -c0), max(0, c1 - w))

    def cut(a: np.ndarray, interp: int, border: int = 0) -> np.ndarray:
        part = a[max(r0, 0):min(r1, h), max(c0, 0):min(c1, w)]
        part = cv2.copyMakeBorder(part, *pad, cv2.BORDER_CONSTANT, value=border)
        return cv2.resize(part, out_shape[::-1], interpolation=interp)

    def binary(a: np.ndarray) -> np.ndarray:
        return (cut(a.astype(np.float32), cv2.INTER_AREA) >= 0.5).astype(np.uint8)

    cut_layers = {name: binary(getattr(side, name)) for name in ("trace", "via", "via_drill", "pad", "hole", "silk")}
    # The files say where the soldermask opens: copper there is bare metal (pads, untented vias,
    # exposed copper), copper elsewhere is under the mask (traces, pours, tented vias).
    bare = binary(side.mask_open)
    covered = 1 - bare
    layers = BoardLayers(out_shape)
    layers.silk = cut_layers["silk"]
    layers.pad = cut_layers["pad"] | ((cut_layers["via"] | cut_layers["trace"]) & bare)
    layers.trace = cut_layers["trace"] & covered
    layers.via = cut_layers["via"] & covered
    layers.via_drill = cut_layers["via_drill"] & covered
    layers.hole = cut_layers["hole"] | (cut_layers["via_drill"] & bare)
    board = binary(side.board)
    ids = cut(side.component_ids.astype(np.uint16), cv2.INTER_NEAREST) if side.component_ids is not None else None
    lab = cut(side.label_map(taxonomy, outside), cv2.INTER_NEAREST, border=taxonomy.ignore_index if outside == "ignore" else 0)
    comp_alpha = (ids > 0).astype(np.uint8) if ids is not None else None
    comp_rgb = _component_colours(side, rng)[ids] if ids is not None else None
    # Photo look: paper, graph paper, wood, glass or a mat around the board, and seen through its holes.
    surface = backdrop(rng, out_shape, px_per_mm=px_per_mm) if look == "photo" else None
    img = paint(layers, px_per_mm, rng, comp_alpha, comp_rgb, tented=True, look=look,  # what is not bare is covered
                behind=surface)
    if surface is None:
        surface = np.array([rng.uniform(0.15, 0.85)] * 3, np.float32) * (1 + rng.uniform(-0.1, 0.1, 3)).astype(np.float32)
    a = cv2.GaussianBlur(board.astype(np.float32), (0, 0), 0.7)[..., None]
    img = img * a + surface * (1 - a)
    return img, lab


def render_crop(side: SideLabels, taxonomy: Taxonomy, rng: np.random.Generator, size: int = 512,
                px_per_mm: tuple[float, float] = (8.0, 20.0), outside: str = "ignore",
                look: str = "classic") -> tuple[np.ndarray, np.ndarray]:
    """One ``size`` x ``size`` photo of part of the side at a random scale, and its mask (``look``: see ``paint``)."""
    base = side.canvas.px_per_mm
    ppm = float(rng.uniform(*px_per_mm))
    canvas = int(math.ceil(size * 1.2)) + 8  # margin for the camera's rotation and perspective
    span = canvas * base / ppm  # window side in base pixels
    rows, cols = np.nonzero(side.board)
    k = int(rng.integers(len(rows))) if len(rows) else 0
    cy, cx = (rows[k], cols[k]) if len(rows) else (side.board.shape[0] // 2, side.board.shape[1] // 2)
    r0, c0 = int(round(cy - span / 2)), int(round(cx - span / 2))
    r1, c1 = r0 + int(round(span)), c0 + int(round(span))
    img, lab = _paint_window(side, taxonomy, outside, rng, (r0, c0, r1, c1), (canvas, canvas), ppm, look)
    return camera(rng, img, lab, size, taxonomy.ignore_index, look)


def render_full(side: SideLabels, taxonomy: Taxonomy, rng: np.random.Generator, max_side: int = 2048,
                outside: str = "ignore", look: str = "classic") -> tuple[np.ndarray, np.ndarray]:
    """The whole side in one photo (no perspective), its long side at most ``max_side`` px."""
    h, w = side.board.shape
    scale = min(1.0, max_side / max(h, w))
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    img, lab = _paint_window(side, taxonomy, outside, rng, (0, 0, h, w), shape, side.canvas.px_per_mm * scale, look)
    return sensor(rng, img, look), lab
