"""Register a photo to its board's sides: candidates, refinement, the choice, and the verdict.

:func:`register_photo` finds every confident board instance in a photo (a photo may hold several
boards, or both sides of one): coarse candidates from keypoints and from the outline
(:mod:`.coarse`), or from hand-given correspondences, each refined quickly
(:func:`.fine.refine` up to 8 px/mm) and scored; the best is refined at the photo's own
resolution and judged. Candidates that land on the same place with another side or turn are its
rivals: a fit that does not clearly beat them is ambiguous and refused. The verdict names what
failed, so a skipped photo says why.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pcbseg.data.gerber.example import write_example_board
    >>> from pcbseg.data.gerber.labels import label_board
    >>> from pcbseg.data.photo.frame import SideFrame
    >>> _, sides = label_board(write_example_board(Path(tempfile.mkdtemp()) / "demo"), px_per_mm=20)
    >>> frame = SideFrame(sides[0])
    >>> truth = np.array([[0, -12.0, 300], [12, 0, 40], [0, 0, 1]])
    >>> photo = cv2.warpPerspective(frame.appearance_render(20), truth @ frame.grid(20), (360, 280), borderValue=(200, 190, 170))
    >>> reg = register_photo(photo, [frame], Limits(min_blocks=5, min_coverage=0.1))[0]
    >>> bool(np.abs(apply_h(reg.fit.h, [[8, 6]]) - apply_h(truth, [[8, 6]])).max() < 1)
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from pcbseg.data.photo.coarse import Candidate, _resize_long, board_regions, keypoint_candidates, outline_candidates
from pcbseg.data.photo.fine import Fit, PhotoPyramid, refine, separation, warp_to_frame
from pcbseg.data.photo.frame import OUTSIDE, RING, SideFrame, apply_h


@dataclass
class Limits:
    """When a fit is confident enough to label a photo from."""

    max_residual_mm: float = 0.3  # median block misfit in the verification pass
    min_blocks: int = 30  # inlier blocks in the verification pass
    min_inlier_share: float = 0.4
    min_coverage: float = 0.25  # share of the board spanned by inlier blocks
    min_margin: float = 0.25  # 1 - rival score / score


@dataclass
class Registration:
    fit: Fit
    frame: SideFrame
    source: str
    score: float
    rival: float = 0.0  # how well the best other side or turn explains the photo, relative to this fit
    rival_side: str | None = None
    side_given: bool = True  # the side came from board.json, so the other side is only checked, not a rival
    seconds: float = 0.0
    reasons: list[str] = field(default_factory=list)  # why it is not confident; empty = confident
    points_rms_mm: float | None = None

    @property
    def margin(self) -> float:
        """1 - the rival's relative fit; the other side does not count when the side was given."""
        if self.side_given and self.rival_side not in (None, self.frame.side):
            return 1.0 if self.rival <= 1 else 0.0
        return float(np.clip(1 - self.rival, 0, 1))

    @property
    def confidence(self) -> float:
        """0..1: inlier share × coverage (saturating at 0.6) × margin over the rival."""
        f = self.fit
        return float(f.inlier_share * min(1.0, f.coverage / 0.6) * self.margin)

    @property
    def ok(self) -> bool:
        return not self.reasons


def fit_score(fit: Fit) -> float:
    """How well a fit explains the photo: class separation × inlier coverage × inlier share."""
    return float(fit.separation * fit.coverage * fit.inlier_share)


def quad(fit_h: np.ndarray, frame: SideFrame) -> np.ndarray:
    return apply_h(fit_h, frame.board_corners_mm()).astype(np.float32)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller of two convex quadrilaterals."""
    area, _ = cv2.intersectConvexConvex(a, b)
    return float(area / max(min(cv2.contourArea(a), cv2.contourArea(b)), 1e-9))


def judge(reg: Registration, limits: Limits) -> None:
    f, r = reg.fit, []
    if f.inliers < limits.min_blocks:
        r.append(f"only {f.inliers} features matched (need {limits.min_blocks})")
    if f.inliers and f.inlier_share < limits.min_inlier_share:
        r.append(f"only {100 * f.inlier_share:.0f}% of the matched features agree with the fit (need "
                 f"{100 * limits.min_inlier_share:.0f}%)")
    if f.coverage < limits.min_coverage:
        r.append(f"the agreeing features span {100 * f.coverage:.0f}% of the board (need {100 * limits.min_coverage:.0f}%)")
    if not math.isfinite(f.residual_mm) or f.residual_mm > limits.max_residual_mm:
        r.append(f"residual {f.residual_mm:.3f} mm is above the limit {limits.max_residual_mm} mm")
    if reg.rival > 1 and reg.rival_side != reg.frame.side:
        r.append(f"the photo looks like the {reg.rival_side} side, not the {reg.frame.side}: where the two differ, the "
                 f"{reg.rival_side} explains {reg.rival:.2f}x as much")
    elif reg.margin < limits.min_margin:
        what = "turned" if reg.rival_side == reg.frame.side else "seen from the other side"
        r.append(f"ambiguous: the board {what} explains {reg.rival:.2f}x as much of the photo where the two differ "
                 f"(need at most {1 - limits.min_margin:.2f}x)")
    reg.reasons = r


def points_homography(px: np.ndarray, mm: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Homography from frame-mm/photo-px pairs (at least 4), and its leave-one-out error in mm (5+ pairs)."""
    if len(px) < 4:
        raise ValueError(f"need at least 4 correspondences, got {len(px)}")
    h, _ = cv2.findHomography(mm, px, 0)
    if h is None:
        raise ValueError("the correspondences are degenerate (three or more on a line?)")
    loo = None
    if len(px) >= 5:
        errs = []
        for i in range(len(px)):
            keep = np.arange(len(px)) != i
            hi, _ = cv2.findHomography(mm[keep], px[keep], 0)
            if hi is not None:
                back = apply_h(np.linalg.inv(hi), px[i:i + 1])[0]
                errs.append(float(np.hypot(*(back - mm[i]))))
        loo = float(np.sqrt(np.mean(np.square(errs)))) if errs else None
    return h / h[2, 2], loo


def register_photo(rgb: np.ndarray, frames: list[SideFrame], limits: Limits | None = None, max_boards: int = 1,
                   points: tuple[str, np.ndarray, np.ndarray] | None = None, points_fixed: bool = False,
                   other_sides: list[SideFrame] | None = None, side_given: bool = True,
                   max_candidates: int = 8) -> list[Registration]:
    """Every board instance found in ``rgb``, best first; the last may be unconfident (see ``reasons``).

    ``frames`` are the sides the photo may show; ``other_sides`` are only tried as rivals (a photo
    said to show the top is checked against the bottom). ``points`` = (side, photo px N x 2, frame
    mm N x 2) starts the search there (or, with ``points_fixed``, is the fit).
    """
    limits = limits or Limits()
    pyr = PhotoPyramid(rgb)
    by_side = {f.side: f for f in frames}
    everyone = frames + [f for f in other_sides or [] if f.side not in by_side]
    if points is not None:
        side, px, mm = points
        frame = by_side[side]
        h, loo = points_homography(px, mm)
        fit = refine(pyr, frame, h, start_search_mm=1.2, fixed=points_fixed)
        reg = Registration(fit, frame, "points (fixed)" if points_fixed else "points", fit_score(fit), points_rms_mm=loo,
                           side_given=side_given)
        reg.rival, reg.rival_side = _rivals(pyr, reg, everyone)
        judge(reg, limits)
        return [reg]
    cands: list[Candidate] = keypoint_candidates(rgb, frames)
    small, _ = _resize_long(rgb, 480)
    regions = board_regions(small)
    for frame in frames:
        cands += outline_candidates(rgb, frame, regions=regions)[:max_candidates]
    quick: list[tuple[float, Fit, SideFrame, str]] = []
    for c in _distinct(cands, by_side):
        frame = by_side[c.source.split(":")[1]]
        fit = refine(pyr, frame, c.h, max_ppm=8)
        quick.append((fit_score(fit), fit, frame, c.source.split(":")[0]))
    quick.sort(key=lambda t: -t[0])
    found: list[Registration] = []
    while quick and len(found) < max_boards:
        score, fit, frame, source = quick.pop(0)
        if score <= 0:
            break
        full = refine(pyr, frame, fit.h, start_search_mm=1.2)
        reg = Registration(full, frame, source, fit_score(full), side_given=side_given)
        reg.rival, reg.rival_side = _rivals(pyr, reg, everyone)
        judge(reg, limits)
        if found and not reg.ok:
            break
        found.append(reg)
        here = quad(full.h, frame)
        quick = [q for q in quick if overlap(here, quad(q[1].h, q[2])) < 0.2]
        if not reg.ok:
            break
    return found


def _distinct(cands: list[Candidate], by_side: dict[str, SideFrame]) -> list[Candidate]:
    """Candidates that place the board differently (corners further apart than 3% of its size)."""
    out: list[tuple[Candidate, np.ndarray]] = []
    for c in sorted(cands, key=lambda c: (c.source.startswith("outline"), -c.score)):
        q = quad(c.h, by_side[c.source.split(":")[1]])
        size = math.sqrt(max(cv2.contourArea(q), 1.0))
        same = [o for o, oq in out if o.source.split(":")[1] == c.source.split(":")[1]
                and np.abs(oq - q).max() < 0.03 * size]
        if not same:
            out.append((c, q))
    return [c for c, _ in out]


def _rivals(pyr: PhotoPyramid, reg: Registration, frames: list[SideFrame], ppm: float = 8.0) -> tuple[float, str | None]:
    """How well the board placed on the same quadrilateral another way explains the photo, relative
    to ``reg``: the other side, or turned by 90°, 180° or 270°, each refined.

    The two explanations are compared only where their appearance classes differ (traces, legend,
    pads that are not mirrored or turned copies of each other), since what they share (the outline,
    symmetric holes) cannot tell them apart. Returns (the best ratio of the rival's correlation ratio
    to ``reg``'s there, its side); 0 when nothing differs.
    """
    here = quad(reg.fit.h, reg.frame)
    f1 = reg.frame
    grid = f1.grid(ppm)
    cls1 = f1.classes(ppm)
    w_mm, h_mm = f1.size_mm
    lab = warp_to_frame(pyr, reg.fit.h, grid, cls1.shape, (w_mm / 2, h_mm / 2))
    best, side = 0.0, None
    for f2 in frames:
        corners = f2.board_corners_mm().astype(np.float32)
        for k in range(4):
            if f2.side == f1.side and k == 0:
                continue
            h = cv2.getPerspectiveTransform(corners, np.roll(here, k, axis=0))
            fit = refine(pyr, f2, h / h[2, 2], max_ppm=ppm)
            if f2.side == f1.side and _turn_deg(fit.h, reg.fit.h, f2, f1) < 10:
                continue  # slid back onto the same fit
            to_f2 = np.linalg.inv(f2.grid(ppm)) @ np.linalg.inv(fit.h) @ reg.fit.h @ grid
            cls2 = cv2.warpPerspective(f2.classes(ppm), to_f2, cls1.shape[::-1],
                                       flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=OUTSIDE)
            differ = (cls1 != cls2) & ((cls1 > RING) | (cls2 > RING))
            if differ.sum() < 0.01 * (cls1 > RING).sum():
                continue  # the same labels either way
            s1 = separation(lab, np.where(differ, cls1, OUTSIDE).astype(np.uint8))
            s2 = separation(lab, np.where(differ, cls2, OUTSIDE).astype(np.uint8))
            ratio = s2 / max(s1, 1e-9)
            if ratio > best:
                best, side = ratio, f2.side
    return best, side


def _turn_deg(h1: np.ndarray, h2: np.ndarray, f1: SideFrame, f2: SideFrame) -> float:
    """Angle between the board's x axis as two fits place it in the photo."""
    def axis(h: np.ndarray, f: SideFrame) -> float:
        c = f.board_corners_mm().mean(0)
        a, b = apply_h(h, np.stack([c, c + np.array([1.0, 0.0])]))
        return math.degrees(math.atan2(*(b - a)[::-1]))
    d = abs(axis(h1, f1) - axis(h2, f2)) % 360
    return min(d, 360 - d)
