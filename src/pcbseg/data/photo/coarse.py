"""Coarse registration: candidate homographies (frame mm -> photo px) for where the board is.

Two independent sources of candidates, so that one failing does not lose the photo:

- *keypoints*: SIFT on a plain grey rendering of the side (dark mask, bright metal and ink, dark
  holes) matched to SIFT on the photo, and a RANSAC homography; this needs no segmentation and
  sees through backgrounds, but can fail on low-contrast boards;
- *outline*: the photo is clustered by colour; each compact region is a candidate board, its
  minimum-area rectangle is matched to the outline's in the four ways the corners can pair, and
  the homography is refined so the outline covers the region (ECC on the two masks).

Each candidate is only a start: :func:`pcbseg.data.photo.fine.refine` decides between them.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pcbseg.data.gerber.example import write_example_board
    >>> from pcbseg.data.gerber.labels import label_board
    >>> from pcbseg.data.photo.frame import SideFrame
    >>> _, sides = label_board(write_example_board(Path(tempfile.mkdtemp()) / "demo"), px_per_mm=20)
    >>> frame = SideFrame(sides[0])
    >>> truth = np.array([[0, -12.0, 300], [12, 0, 40], [0, 0, 1]])   # turned 90°, 12 px/mm
    >>> photo = cv2.warpPerspective(frame.appearance_render(20), truth @ frame.grid(20), (360, 280), borderValue=(200, 190, 170))
    >>> hyps = outline_candidates(photo, frame)
    >>> any(np.abs(apply_h(h.h, [[8, 6]]) - apply_h(truth, [[8, 6]])).max() < 6 for h in hyps)
    True
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import cv2
import numpy as np

from pcbseg.data.photo.frame import SideFrame, apply_h


@dataclass
class Candidate:
    h: np.ndarray  # frame mm -> photo px
    source: str  # "keypoints", "outline", "points"
    score: float  # source-specific: inlier matches, or outline IoU


def _resize_long(rgb: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    s = min(1.0, long_side / max(rgb.shape[:2]))
    return (cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb), s


def plausible(h: np.ndarray, frame: SideFrame, photo_shape: tuple[int, int], min_ppm: float = 2.0) -> bool:
    """The board maps to a convex quadrilateral of sensible size, mostly inside the photo."""
    if h is None or not np.all(np.isfinite(h)):
        return False
    corners = frame.board_corners_mm()
    q = apply_h(h, corners)
    den = np.c_[corners, np.ones(4)] @ h[2]
    if np.any(den <= 0):  # a corner behind the camera
        return False
    if not cv2.isContourConvex(q.astype(np.float32)):
        return False
    area = cv2.contourArea(q.astype(np.float32))
    w_mm, h_mm = corners[2] - corners[0]
    ppm = math.sqrt(area / (w_mm * h_mm))
    hh, ww = photo_shape
    sides = np.hypot(*(np.roll(q, -1, 0) - q).T)
    if ppm < min_ppm or area > 4 * hh * ww or sides.max() > 8 * sides.min() * max(w_mm / h_mm, h_mm / w_mm):
        return False
    inside = np.clip(q, [0, 0], [ww, hh])
    return cv2.contourArea(inside.astype(np.float32)) > 0.3 * area


_SIFT_PHOTO = 8000


def keypoint_candidates(rgb: np.ndarray, frames: list[SideFrame], long_side: int = 1600, ratio: float = 0.85,
                        render_ppm: tuple[float, ...] = (5.0, 9.0)) -> list[Candidate]:
    """SIFT matches between the photo and each side's grey rendering (see the module docstring).

    Each rendering scale gives a homography and a similarity (which survives with fewer, or more
    clustered, matches); every plausible one is a candidate.
    """
    small, s = _resize_long(rgb, long_side)
    grey = cv2.createCLAHE(2.0, (8, 8)).apply(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
    sift = cv2.SIFT_create(nfeatures=_SIFT_PHOTO, contrastThreshold=0.02)
    kp, dp = sift.detectAndCompute(grey, None)
    out: list[Candidate] = []
    if dp is None or len(kp) < 8:
        return out
    photo_pts = np.float32([k.pt for k in kp]) / s
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    for frame in frames:
        for ppm in render_ppm:
            render = cv2.cvtColor(frame.appearance_render(ppm), cv2.COLOR_RGB2GRAY)
            kt, dt = sift.detectAndCompute(render, None)
            if dt is None or len(kt) < 8:
                continue
            good = [p[0] for p in matcher.knnMatch(dt, dp, k=2) if len(p) == 2 and p[0].distance < ratio * p[1].distance]
            # one template point per photo point: repeated parts (header rows) otherwise pile onto one keypoint
            best: dict[int, cv2.DMatch] = {}
            for g in good:
                if g.trainIdx not in best or g.distance < best[g.trainIdx].distance:
                    best[g.trainIdx] = g
            good = list(best.values())
            if len(good) < 8:
                continue
            src = apply_h(frame.grid(ppm), np.float32([kt[g.queryIdx].pt for g in good]))
            dst = photo_pts[[g.trainIdx for g in good]]
            h, inl = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 6.0 / s, maxIters=10000, confidence=0.999)
            if h is not None and inl is not None and plausible(h, frame, rgb.shape[:2]):
                out.append(Candidate(h / h[2, 2], f"keypoints:{frame.side}", float(inl.sum())))
            a, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=6.0 / s, maxIters=10000)
            if a is not None and inl is not None:
                h = np.vstack([a, [0, 0, 1]])
                if plausible(h, frame, rgb.shape[:2]):
                    out.append(Candidate(h, f"keypoints:{frame.side}", float(inl.sum())))
    return out


def _fill_holes(m: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(m)
    cv2.drawContours(out, contours, -1, 1, -1)
    return out


def board_regions(small: np.ndarray, max_regions: int = 30) -> list[np.ndarray]:
    """Compact single-colour regions (holes filled): candidate boards, largest first, duplicates dropped."""
    h, w = small.shape[:2]
    lab = cv2.cvtColor(cv2.medianBlur(small, 5), cv2.COLOR_RGB2LAB).astype(np.float32).reshape(-1, 3)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    ks = max(3, int(0.02 * max(h, w)) | 1)
    close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ks, ks))
    opening = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    regions: list[np.ndarray] = []
    # lightness and colour, colour alone (a purple board on grey glass), lightness first (black on white)
    for weights in ((0.5, 1, 1), (0.0, 1, 1), (1, 0.3, 0.3)):
        x = np.ascontiguousarray(lab * np.array(weights, np.float32))
        for k in (3, 5, 7):
            cv2.setRNGSeed(k)
            _, _, centres = cv2.kmeans(np.ascontiguousarray(x[::5]), k, None, crit, 1, cv2.KMEANS_PP_CENTERS)
            labels = ((x[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1).reshape(h, w)
            for c in range(k):
                m = cv2.morphologyEx((labels == c).astype(np.uint8), cv2.MORPH_OPEN, opening)
                m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, close)
                n, cc, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=4)
                for i in range(1, n):
                    _, _, bw, bh, area = stats[i]
                    if area < 0.01 * h * w or area > 0.9 * h * w or (bw == w and bh == h):
                        continue
                    r = _fill_holes((cc == i).astype(np.uint8))
                    if all((r & q).sum() / max((r | q).sum(), 1) < 0.95 for q in regions):
                        regions.append(r)
    regions.sort(key=lambda r: -int(r.sum()))
    return regions[:max_regions]


def _min_rect(mask: np.ndarray) -> np.ndarray:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return cv2.boxPoints(cv2.minAreaRect(max(contours, key=cv2.contourArea))).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def outline_candidates(rgb: np.ndarray, frame: SideFrame, long_side: int = 480, min_iou: float = 0.75,
                       regions: list[np.ndarray] | None = None) -> list[Candidate]:
    """Board-shaped colour regions, each paired with the outline four ways (see the module docstring)."""
    small, s = _resize_long(rgb, long_side)
    regions = board_regions(small) if regions is None else regions
    ppm = 4.0
    board = frame.layer("board", ppm)
    to_mm = frame.grid(ppm)
    board_rect = apply_h(to_mm, _min_rect(board))
    blurred_board = cv2.GaussianBlur(board.astype(np.float32), (0, 0), 2)
    out = []
    for region in regions:
        rect = _min_rect(region)
        blurred_region = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 2)
        for k in range(4):
            h = cv2.getPerspectiveTransform(board_rect.astype(np.float32), np.roll(rect, k, axis=0))
            m = (h @ to_mm).astype(np.float32)
            if _iou(cv2.warpPerspective(board, m, region.shape[::-1], flags=cv2.INTER_NEAREST), region) < min_iou * 0.8:
                continue
            with contextlib.suppress(cv2.error):  # no convergence: keep the corner fit
                _, m = cv2.findTransformECC(blurred_board, blurred_region, m / m[2, 2], cv2.MOTION_HOMOGRAPHY,
                                            (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 25, 1e-4), None, 1)
            iou = _iou(cv2.warpPerspective(board, m, region.shape[::-1], flags=cv2.INTER_NEAREST), region)
            if iou < min_iou:
                continue
            h = np.diag([1 / s, 1 / s, 1]) @ m.astype(np.float64) @ np.linalg.inv(to_mm)
            if plausible(h, frame, rgb.shape[:2]):
                out.append(Candidate(h / h[2, 2], f"outline:{frame.side}", iou))
    out.sort(key=lambda c: -c.score)
    return out
