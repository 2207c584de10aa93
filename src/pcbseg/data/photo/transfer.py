"""Labels from the files into the photo: what the camera sees, and nothing the files cannot know.

The side's label map (:meth:`pcbseg.data.gerber.labels.SideLabels.label_map`, rasterised at about
the photo's own pixels per mm) is warped into the photo with nearest-neighbour sampling through the
registration (and its lens or bow correction, when it has one). Then, set to ``ignore``:

- outside the board outline (``outside="background"`` labels it background instead);
- a band on every class boundary as wide as the registration's residual (``boundary_px``);
- what the photo shows and the files do not: pixels whose colour is far from what their
  appearance class looks like on this very photo (parts not in the design, overhanging
  connectors, wires, stickers, lot codes, marker ink, glare), in blobs, not single pixels;
- ``ignore_regions`` the user gives in Gerber millimetres (a revision that differs, say).

Component bodies come from :mod:`pcbseg.data.gerber.labels`' estimate, and only where the photo
shows something other than the bare footprint: a body on a bare board is not drawn.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pcbseg.data.gerber.example import write_example_board
    >>> from pcbseg.data.gerber.labels import label_board
    >>> from pcbseg.data.photo.fine import PhotoPyramid, refine
    >>> from pcbseg.data.photo.frame import SideFrame
    >>> from pcbseg.taxonomy import get_taxonomy
    >>> _, sides = label_board(write_example_board(Path(tempfile.mkdtemp()) / "demo"), px_per_mm=20)
    >>> frame = SideFrame(sides[0])
    >>> truth = np.array([[20.0, 0, 10], [0, 20, 15], [0, 0, 1]])
    >>> photo = cv2.warpPerspective(frame.appearance_render(20), truth @ frame.grid(20), (380, 280))
    >>> pyr = PhotoPyramid(photo)
    >>> fit = refine(pyr, frame, truth)
    >>> mask, info = transfer_labels(pyr, frame, sides[0], fit.warp, get_taxonomy("default"), (0, 0, 380, 280))
    >>> mask.shape, int((mask == 255).mean() > 0.3)
    ((280, 380), 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from pcbseg.data.gerber.labels import SideLabels
from pcbseg.data.photo.fine import PhotoPyramid, Warp, warp_to_frame
from pcbseg.data.photo.frame import BARE, HOLE, MASK, MASK_COPPER, SILK, SideFrame, apply_h, label_grid
from pcbseg.taxonomy import Taxonomy

OCCLUSION_PPM = 16.0


@dataclass
class TransferInfo:
    placed: list[str] = field(default_factory=list)  # components whose bodies are drawn
    unexpected_share: float = 0.0  # share of the board set to ignore because the photo differs from the files
    region_share: float = 0.0  # share of the board inside the given ignore regions
    boundary_px: int = 0


def _disk(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


_GROUPS = ((MASK,), (MASK_COPPER,), (BARE,), (SILK,), (HOLE,))


def unexpected(pyr: PhotoPyramid, frame: SideFrame, h: np.ndarray, residual_mm: float = 0.05, far: float = 6.0,
               min_area_mm2: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Where the photo does not look like the files say (0/1 over the board, on the frame grid at
    :data:`OCCLUSION_PPM`), and that grid.

    Each appearance class (mask, covered copper, bare metal, legend, holes) gets a colour model from the
    photo itself (median and spread, re-estimated three times from the pixels it explains, so
    parts covering half the pads do not drag the pad colour). A board pixel is unexpected when
    its colour is best explained by a group the files do not put within the residual (+0.1 mm) of
    it, or by none (``far`` spreads away from every group): a black IC on green mask, white ink
    where the files have none, a wire, glare. Near a hole anything goes (it shows what lies
    behind the board), and near bare metal anything but the mask's colour does (a mirror-like
    finish shows its surroundings; solder joints, leads). Specks smaller
    than ``min_area_mm2`` are dropped.
    """
    ppm = OCCLUSION_PPM
    cls, grid = frame.classes(ppm), frame.grid(ppm)
    w_mm, h_mm = frame.size_mm
    lab = warp_to_frame(pyr, h, grid, cls.shape, (w_mm / 2, h_mm / 2))
    board = cls >= MASK
    group = np.full(cls.shape, -1, np.int8)
    for g, members in enumerate(_GROUPS):
        group[np.isin(cls, members)] = g
    core = cv2.erode(board.astype(np.uint8), _disk(1)) > 0
    x = lab[board]
    tmpl = group[board]
    assigned = tmpl.copy()
    dist = np.full((len(_GROUPS), len(x)), np.inf, np.float32)  # RMS of robust z-scores
    nll = np.full((len(_GROUPS), len(x)), np.inf, np.float32)  # Gaussian negative log-likelihood
    core_b = core[board]
    for _ in range(3):
        for g in range(len(_GROUPS)):
            sel = (tmpl == g) & (assigned == g) & core_b
            if sel.sum() < 20:
                sel = (tmpl == g) & core_b
            if sel.sum() < 20:
                dist[g] = nll[g] = np.inf
                continue
            sample = x[sel][:: max(1, int(sel.sum()) // 50000)]
            mu = np.median(sample, axis=0)
            sigma = np.maximum(1.4826 * np.median(np.abs(sample - mu), axis=0), 6.0)
            z2 = (((x - mu) / sigma) ** 2).sum(axis=1)
            dist[g] = np.sqrt(z2 / 3)
            # a broad model (pads half hidden by parts) must not explain everything: pay for its width
            nll[g] = 0.5 * z2 + np.log(sigma).sum()
        assigned = nll.argmin(axis=0).astype(np.int8)
    tol = max(1, math.ceil((residual_mm + 0.1) * ppm))
    near = np.zeros((len(_GROUPS), *cls.shape), bool)
    for g in range(len(_GROUPS)):
        near[g] = cv2.dilate((group == g).astype(np.uint8), _disk(tol)) > 0
    near_b = near[:, board]
    covered = assigned <= 1
    # covered copper may look just like plain mask, and the other way round
    ok = np.where(covered, near_b[0] | near_b[1], near_b[assigned, np.arange(len(x))]) & (dist.min(axis=0) < far)
    ok |= near_b[4]  # a hole shows whatever lies behind the board
    ok |= near_b[2] & ~covered  # bare metal mirrors its surroundings: anything but mask colour
    odd = np.zeros(cls.shape, np.uint8)
    odd[board] = ~ok
    odd = cv2.morphologyEx(odd, cv2.MORPH_OPEN, _disk(1))
    odd = cv2.morphologyEx(odd, cv2.MORPH_CLOSE, _disk(max(1, round(0.3 * ppm))))
    odd &= board.astype(np.uint8)
    _, cc, stats, _ = cv2.connectedComponentsWithStats(odd, connectivity=8)
    small = np.nonzero(stats[:, cv2.CC_STAT_AREA] < min_area_mm2 * ppm * ppm)[0]
    odd[np.isin(cc, small[small > 0])] = 0
    # what a large occluder encloses is hidden too (a hole under a connector still "looks like anything")
    contours, _ = cv2.findContours(odd, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    big = [c for c in contours if cv2.contourArea(c) >= 4 * ppm * ppm]
    cv2.drawContours(odd, big, -1, 1, -1)
    odd &= board.astype(np.uint8)
    return odd, grid


def label_map(labels: SideLabels, taxonomy: Taxonomy, outside: str, placed: set[int]) -> np.ndarray:
    """The side's labels with only the component bodies in ``placed`` (1-based ids) drawn."""
    ids = labels.component_ids
    if ids is None:
        return labels.label_map(taxonomy, outside)
    keep = np.isin(ids, sorted(placed)) if placed else np.zeros(ids.shape, bool)
    labels.component_ids = np.where(keep, ids, 0).astype(ids.dtype)
    try:
        return labels.label_map(taxonomy, outside)
    finally:
        labels.component_ids = ids


def transfer_labels(pyr: PhotoPyramid, frame: SideFrame, labels: SideLabels, warp: Warp, taxonomy: Taxonomy,
                    box: tuple[int, int, int, int], outside: str = "ignore", boundary_px: int = 1,
                    ignore_regions: list[tuple[float, float, float, float]] | None = None,
                    occlusion: bool = True, residual_mm: float = 0.05) -> tuple[np.ndarray, TransferInfo]:
    """The class-id mask of the photo window ``box`` = (x0, y0, x1, y1); see the module docstring.

    ``frame`` is the side the registration was made with, ``warp`` the registration (frame mm ->
    photo px), ``labels`` the same side rasterised at the resolution to transfer (about the
    photo's px/mm); ``ignore_regions`` are Gerber mm boxes.
    """
    h = warp.homography()
    info = TransferInfo(boundary_px=boundary_px)
    ignore = taxonomy.ignore_index
    lgrid = label_grid(labels)
    board = labels.board > 0
    to_label = np.linalg.inv(lgrid)
    extra = np.zeros(labels.board.shape, bool)  # label-grid pixels to ignore
    placed: set[int] = set()
    if occlusion:
        odd, ogrid = unexpected(pyr, frame, h, residual_mm if math.isfinite(residual_mm) else 0.1)
        odd_l = cv2.warpPerspective(odd, to_label @ ogrid, labels.board.shape[::-1], flags=cv2.INTER_NEAREST) > 0
        if labels.component_ids is not None:
            for k, comp in enumerate(labels.components, start=1):
                body = labels.component_ids == k
                if body.any() and odd_l[body].mean() >= 0.35:
                    placed.add(k)
                    info.placed.append(comp.ref)
            bodies = np.isin(labels.component_ids, sorted(placed)) if placed else np.zeros_like(board)
        else:
            bodies = np.zeros_like(board)
        odd_l &= ~bodies
        extra |= odd_l
        info.unexpected_share = float(odd_l[board].mean()) if board.any() else 0.0
    lab = label_map(labels, taxonomy, outside, placed)
    if ignore_regions:
        region = np.zeros(labels.board.shape, np.uint8)
        for x0, y0, x1, y1 in ignore_regions:
            corners = [frame.gerber_to_frame(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
            px = apply_h(to_label, np.array(corners))
            cv2.fillPoly(region, [np.round(px * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
        info.region_share = float(region[board].mean()) if board.any() else 0.0
        extra |= region > 0
    lab[extra] = ignore
    x0, y0, x1, y1 = box
    fill = ignore if outside == "ignore" else taxonomy.resolve("background")
    size = (x1 - x0, y1 - y0)
    if warp.is_homography:
        shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
        mask = cv2.warpPerspective(lab, to_label @ np.linalg.inv(h) @ shift, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    else:
        mask = _remap(lab, to_label, warp, (x0, y0), size, fill)
    if boundary_px > 0:
        k = _disk(boundary_px)
        mask[cv2.dilate(mask, k) != cv2.erode(mask, k)] = ignore
    return mask, info


def _remap(lab: np.ndarray, to_label: np.ndarray, warp: Warp, origin: tuple[int, int], size: tuple[int, int], fill: int,
           step: int = 8) -> np.ndarray:
    """Nearest-neighbour labels through a warp that is not a homography. The mapping is smooth
    over millimetres, so it is computed exactly every ``step`` photo pixels and interpolated."""
    w, hh = size
    gw, gh = (w - 1) // step + 2, (hh - 1) // step + 2
    gx, gy = np.meshgrid(np.arange(gw) * step + origin[0], np.arange(gh) * step + origin[1])
    q = warp.to_frame(np.c_[gx.ravel(), gy.ravel()].astype(np.float64))
    grid = apply_h(to_label, q).reshape(gh, gw, 2).astype(np.float32)
    # corners of the coarse grid sit on pixel centres, so (g - 1) * step + 1 pixels span it exactly
    dense = cv2.resize(grid, ((gw - 1) * step + 1, (gh - 1) * step + 1), interpolation=cv2.INTER_LINEAR)[:hh, :w]
    return cv2.remap(lab, np.ascontiguousarray(dense[..., 0]), np.ascontiguousarray(dense[..., 1]), cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def boundary_width(residual_mm: float, photo_ppm: float, setting: str | int = "auto") -> int:
    """The ignore band's half-width in photo px: the residual (``auto``), or a fixed number."""
    if setting == "auto":
        return max(1, math.ceil(residual_mm * photo_ppm)) if math.isfinite(residual_mm) else 1
    return int(setting)
