"""One side of a board as the camera sees it: appearance classes and a millimetre frame.

The *frame* of a side is its label canvas measured in millimetres from the top-left corner, x to
the right and y down, as the camera above that side sees it (the bottom side is mirrored, as in
:mod:`pcbseg.data.gerber.labels`). A registration is a homography from frame millimetres to photo
pixels, whatever the resolution the side was rasterised at.

Appearance classes are what looks alike on every board whatever its colours: plain soldermask,
soldermask over copper, bare copper (pads, exposed vias), legend ink, drilled holes, and a ring of
whatever surrounds the board.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pcbseg.data.gerber.example import write_example_board
    >>> from pcbseg.data.gerber.labels import label_board
    >>> _, sides = label_board(write_example_board(Path(tempfile.mkdtemp()) / "demo"), px_per_mm=20)
    >>> frame = SideFrame(sides[0])
    >>> [round(float(v), 2) for v in frame.size_mm], frame.classes(5).shape
    ([17.05, 12.05], (60, 85))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pcbseg.data.gerber.labels import SideLabels

OUTSIDE, RING, MASK, MASK_COPPER, BARE, SILK, HOLE = range(7)
APPEARANCE_NAMES = ("outside", "ring", "mask", "mask over copper", "bare copper", "silkscreen", "hole")
NUM_APPEARANCE = len(APPEARANCE_NAMES)
# A plain grey rendering of the classes (dark mask, brighter copper under it, bright metal and ink,
# dark holes), for keypoint matching: the polarity most photos share.
GREY_LEVELS = np.array([0.5, 0.5, 0.22, 0.32, 0.85, 1.0, 0.05], np.float32)


def frame_matrix(ppm: float) -> np.ndarray:
    """Pixel coordinates (OpenCV: pixel centres at integers) of a canvas at ``ppm`` -> frame mm."""
    return np.array([[1 / ppm, 0, 0.5 / ppm], [0, 1 / ppm, 0.5 / ppm], [0, 0, 1]])


def label_grid(labels: SideLabels, px_mm: tuple[float, float] | None = None) -> np.ndarray:
    """Pixel coordinates of a side's arrays -> frame mm (``px_mm``: the size of one of their pixels,
    when they were resampled). The frame starts at the canvas's left edge for the top side and at
    its right edge for the (mirrored) bottom side, so it is the same at every resolution."""
    ppm = labels.canvas.px_per_mm
    sx, sy = px_mm or (1 / ppm, 1 / ppm)
    # a canvas is a whole number of pixels, a little wider than the board's extent: the mirrored
    # bottom side starts that little bit before its frame's origin
    shift = labels.board.shape[1] / ppm - labels.canvas.width_mm if labels.side == "bottom" else 0.0
    return np.array([[sx, 0, 0.5 * sx - shift], [0, sy, 0.5 * sy], [0, 0, 1]])


def apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """A homography applied to N x 2 points."""
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    q = np.c_[pts, np.ones(len(pts))] @ h.T
    return q[:, :2] / q[:, 2:3]


@dataclass
class SideFrame:
    """A labelled side and the appearance template derived from it (see the module docstring)."""

    labels: SideLabels
    ring_mm: float = 2.0

    @property
    def ppm(self) -> float:
        return self.labels.canvas.px_per_mm

    @property
    def side(self) -> str:
        return self.labels.side

    @property
    def size_mm(self) -> tuple[float, float]:
        c = self.labels.canvas
        return c.width_mm, c.height_mm

    def grid(self, ppm: float) -> np.ndarray:
        """Pixel coordinates of the arrays :meth:`layer` and :meth:`classes` return at ``ppm`` -> frame mm."""
        h0, w0 = self.labels.board.shape
        h, w = self.shape(ppm)
        return label_grid(self.labels, (w0 / w / self.ppm, h0 / h / self.ppm))

    def board_corners_mm(self) -> np.ndarray:
        """Corners of the board outline's bounding box in frame mm (clockwise from top-left)."""
        rows, cols = np.nonzero(self.labels.board)
        g = self.grid(self.ppm)
        (x0, y0), (x1, y1) = apply_h(g, [[cols.min() - 0.5, rows.min() - 0.5], [cols.max() + 0.5, rows.max() + 0.5]])
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])

    def gerber_to_frame(self, x: float, y: float) -> tuple[float, float]:
        """Gerber millimetres (seen from the top) -> this side's frame millimetres."""
        c = self.labels.canvas
        u = x - c.x0 if self.side != "bottom" else c.x0 + c.width_mm - x
        return u, c.y0 + c.height_mm - y

    def layer(self, name: str, ppm: float) -> np.ndarray:
        """A 0/1 layer of the side at another resolution (area-averaged, then at least half covered)."""
        a = getattr(self.labels, name)
        if math.isclose(ppm, self.ppm):
            return (a > 0).astype(np.uint8)
        shape = self.shape(ppm)
        interp = cv2.INTER_AREA if ppm < self.ppm else cv2.INTER_LINEAR
        return (cv2.resize((a > 0).astype(np.float32), shape[::-1], interpolation=interp) >= 0.5).astype(np.uint8)

    def shape(self, ppm: float) -> tuple[int, int]:
        h, w = self.labels.board.shape
        return max(1, round(h * ppm / self.ppm)), max(1, round(w * ppm / self.ppm))

    def appearance_render(self, ppm: float, blur_px: float = 0.7) -> np.ndarray:
        """A grey uint8 RGB picture of the side from :data:`GREY_LEVELS` (outside: mid grey)."""
        cls = self.classes(ppm)
        cls[cls == OUTSIDE] = RING
        g = cv2.GaussianBlur(GREY_LEVELS[cls], (0, 0), blur_px) if blur_px > 0 else GREY_LEVELS[cls]
        return np.repeat((g * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)

    def classes(self, ppm: float) -> np.ndarray:
        """Appearance class per pixel at ``ppm`` (see the module constants)."""
        board = self.layer("board", ppm) > 0
        copper = (self.layer("trace", ppm) | self.layer("via", ppm) | self.layer("pad", ppm)) > 0
        bare = copper & (self.layer("mask_open", ppm) > 0)
        cls = np.full(board.shape, OUTSIDE, np.uint8)
        r = max(1, round(self.ring_mm * ppm))
        near = cv2.dilate(board.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
        cls[near] = RING
        cls[board] = MASK
        cls[board & copper] = MASK_COPPER
        cls[board & bare] = BARE
        cls[board & (self.layer("silk", ppm) > 0)] = SILK
        cls[board & ((self.layer("hole", ppm) | self.layer("via_drill", ppm)) > 0)] = HOLE
        return cls
