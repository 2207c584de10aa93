"""Fine registration: block matching against the side's appearance, learnt from the photo itself.

The photo is warped into the side's frame with the current homography. The mean colour of every
appearance class (:mod:`.frame`) is measured there, which is what makes the template look like
*this* board under *this* light: green or black mask, silver or gold pads, white or yellow ink.
Photo and template are projected on the colour direction that separates the classes best; then
every block of the template with structure in two directions (a pad corner, a hole, a letter, not
a straight edge) is searched for in the photo by normalised cross-correlation. The block
displacements, mapped back into the photo, give point correspondences, and a RANSAC homography is
fitted to them, so blocks on tall parts, glare, stickers or parts that are not in the files are
outliers and do not pull the fit. This runs coarse to fine (a few px/mm up to the photo's own
resolution) and ends with a verification pass whose block displacements, not refitted, are the
residual reported for the photo.

Example (a render registered back from a shifted start):
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pcbseg.data.gerber.example import write_example_board
    >>> from pcbseg.data.gerber.labels import label_board
    >>> from pcbseg.data.photo.frame import SideFrame
    >>> _, sides = label_board(write_example_board(Path(tempfile.mkdtemp()) / "demo"), px_per_mm=20)
    >>> frame = SideFrame(sides[0])
    >>> truth = np.array([[20.0, 0, 10], [0, 20, 15], [0, 0, 1]])   # 20 px/mm, offset (10, 15) px
    >>> photo = cv2.warpPerspective(frame.appearance_render(20), truth @ frame.grid(20), (380, 280))
    >>> fit = refine(PhotoPyramid(photo), frame, truth @ np.array([[1, 0, 0.4], [0, 1, -0.3], [0, 0, 1]]))
    >>> bool(np.abs(apply_h(fit.h, [[3, 3], [14, 9]]) - apply_h(truth, [[3, 3], [14, 9]])).max() < 0.5)
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import least_squares

from pcbseg.data.photo.frame import NUM_APPEARANCE, OUTSIDE, RING, SideFrame, apply_h


class PhotoPyramid:
    """A photo in CIE Lab (float32) at halving resolutions, so each level of the search reads pixels
    about as large as the frame pixels it fills (no aliasing)."""

    def __init__(self, rgb: np.ndarray, min_side: int = 64):
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        self.levels = [lab]
        while min(self.levels[-1].shape[:2]) >= 2 * min_side:
            self.levels.append(cv2.pyrDown(self.levels[-1]))
        self.shape = rgb.shape[:2]

    def pick(self, photo_px_per_frame_px: float) -> tuple[np.ndarray, float]:
        """The level whose pixels are closest to (not smaller than half) a frame pixel, and its scale."""
        k = int(np.clip(math.floor(math.log2(max(photo_px_per_frame_px, 1.0))), 0, len(self.levels) - 1))
        img = self.levels[k]
        return img, img.shape[1] / self.shape[1]


def photo_ppm(h: np.ndarray, at_mm: tuple[float, float]) -> float:
    """Photo pixels per millimetre of the homography at a frame point (geometric mean of both axes)."""
    x, y = at_mm
    p = apply_h(h, [[x, y], [x + 1, y], [x, y + 1]])
    (ax, ay), (bx, by) = p[1] - p[0], p[2] - p[0]
    return float(math.sqrt(abs(ax * by - ay * bx)))


def warp_to_frame(pyr: PhotoPyramid, h: np.ndarray, grid: np.ndarray, shape: tuple[int, int],
                  centre_mm: tuple[float, float]) -> np.ndarray:
    """The photo resampled onto a frame grid (pixel -> frame mm matrix ``grid``), in Lab, float32."""
    img, scale = pyr.pick(photo_ppm(h, centre_mm) * grid[0, 0])
    m = np.diag([scale, scale, 1.0]) @ h @ grid
    # pixel centres: level px = scale * (photo px + 0.5) - 0.5
    m = np.array([[1, 0, 0.5 * scale - 0.5], [0, 1, 0.5 * scale - 0.5], [0, 0, 1]]) @ m
    return cv2.warpPerspective(img, m, shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)


def class_stats(lab: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median Lab colour and pixel count per appearance class (robust to occluders and glare)."""
    means = np.zeros((NUM_APPEARANCE, 3), np.float32)
    counts = np.bincount(cls.ravel(), minlength=NUM_APPEARANCE)
    for c in range(1, NUM_APPEARANCE):
        if counts[c]:
            means[c] = np.median(lab[cls == c][:: max(1, counts[c] // 20000)], axis=0)
    return means, counts


def separation(lab: np.ndarray, cls: np.ndarray) -> float:
    """Correlation ratio: the share of the colour variance on the board and its ring that the
    appearance classes explain (0 = none, 1 = every class one flat colour)."""
    valid = cls > OUTSIDE
    x = lab[valid].astype(np.float64)
    c = cls[valid]
    if len(x) < 100:
        return 0.0
    n = np.bincount(c, minlength=NUM_APPEARANCE).astype(np.float64)
    total = ((x - x.mean(0)) ** 2).sum()
    between = 0.0
    for ch in range(3):
        mu = np.bincount(c, weights=x[:, ch], minlength=NUM_APPEARANCE) / np.maximum(n, 1)
        between += (n * (mu - x[:, ch].mean()) ** 2).sum()
    return float(between / max(total, 1e-9))


def projection(means: np.ndarray, counts: np.ndarray, board_only: bool = False) -> np.ndarray:
    """The Lab direction along which the class colours spread the most (weighted by class size)."""
    use = counts > 0
    use[OUTSIDE] = False
    if board_only:
        use[RING] = False
    w = np.sqrt(counts[use].astype(np.float64))
    mu = means[use].astype(np.float64)
    centred = (mu - np.average(mu, axis=0, weights=w)) * w[:, None]
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[0].astype(np.float32)


@dataclass
class Blocks:
    """Block matches at one level: centres (frame mm), displacements (mm), peak correlations."""

    centres: np.ndarray
    shifts: np.ndarray
    peaks: np.ndarray
    tried: int


def _block_stats(template: np.ndarray, valid: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every b x b block (by its top-left pixel): share of valid pixels, standard deviation,
    and the ratio of the smaller to the larger eigenvalue of its structure tensor (0 = an edge or
    nothing, 1 = a corner or a blob), all from box filters."""
    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, cv2.CV_32F, (b, b), anchor=(0, 0), normalize=True, borderType=cv2.BORDER_CONSTANT)

    t = template.astype(np.float32)
    std = np.sqrt(np.maximum(box(t * t) - box(t) ** 2, 0))
    gx = cv2.Sobel(t, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(t, cv2.CV_32F, 0, 1, ksize=3)
    a, c, d = box(gx * gx), box(gy * gy), box(gx * gy)
    half_tr = (a + c) / 2
    disc = np.sqrt(np.maximum(half_tr**2 - (a * c - d * d), 0))
    ratio = np.where(half_tr + disc > 1e-12, (half_tr - disc) / np.maximum(half_tr + disc, 1e-12), 0)
    return box(valid.astype(np.float32)), std, ratio


def match_blocks(template: np.ndarray, target: np.ndarray, valid: np.ndarray, grid: np.ndarray, block_mm: float,
                 search_mm: float, min_peak: float = 0.5, sharpness: float = 0.03) -> Blocks:
    """Find each structured template block in ``target`` (same grid) within ``search_mm``.

    A match counts when its correlation is at least ``min_peak`` and falls by ``sharpness`` 0.2
    mm away in every direction (a peak, not a ridge).
    """
    ppm = 1 / grid[0, 0]
    b = max(8, round(block_mm * ppm))
    k = max(1, round(0.2 * ppm))  # where a peak must have fallen: 0.2 mm away
    r = max(k + 1, round(search_mm * ppm))
    h, w = template.shape
    step = max(4, b // 2)
    contrast = float(template[valid].std()) if valid.any() else 0.0
    centres, shifts, peaks = [], [], []
    tried = 0
    share, std, ratio = _block_stats(template, valid, b)
    for y in range(r, h - b - r + 1, step):
        for x in range(r, w - b - r + 1, step):
            # blocks with structure in two directions (not a straight edge), mostly on the board
            if share[y, x] < 0.7 or std[y, x] < 0.15 * contrast or ratio[y, x] < 0.08:
                continue
            patch = template[y:y + b, x:x + b]
            tried += 1
            window = target[y - r:y + b + r, x - r:x + b + r]
            if window.std() < 1e-3:
                continue
            res = cv2.matchTemplate(window, patch, cv2.TM_CCOEFF_NORMED)
            _, peak, _, (px, py) = cv2.minMaxLoc(res)
            if peak < min_peak or not (k <= px < res.shape[1] - k and k <= py < res.shape[0] - k):
                continue
            # a peak along a ridge (a straight edge, a row of equal pads) says nothing along the ridge
            ring = res[py - k:py + k + 1:k, px - k:px + k + 1:k].ravel()[[0, 1, 2, 3, 5, 6, 7, 8]]
            if peak - ring.max() < sharpness:
                continue
            # sub-pixel: a parabola through the peak and its neighbours, per axis
            dx = _parabola(res[py, px - 1], peak, res[py, px + 1])
            dy = _parabola(res[py - 1, px], peak, res[py + 1, px])
            centres.append((x + (b - 1) / 2, y + (b - 1) / 2))
            shifts.append((px + dx - r, py + dy - r))
            peaks.append(peak)
    centres_mm = apply_h(grid, np.array(centres).reshape(-1, 2))
    shifts_mm = np.array(shifts).reshape(-1, 2) * np.diag(grid)[:2]
    return Blocks(centres_mm, shifts_mm, np.array(peaks), tried)


def _parabola(a: float, b: float, c: float) -> float:
    den = a - 2 * b + c
    return 0.0 if den >= 0 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))


@dataclass
class Fit:
    """A registration of one photo: frame mm -> photo px, and how well it holds."""

    h: np.ndarray
    side: str
    residual_mm: float = math.inf  # median block misfit in the verification pass
    rms_mm: float = math.inf  # root mean square misfit of the blocks within the inlier threshold
    p90_mm: float = math.inf
    blocks: int = 0  # blocks with a confident match in the verification pass
    tried: int = 0  # structured blocks tried
    inliers: int = 0
    coverage: float = 0.0  # share of the board's area spanned by the inlier blocks (convex hull)
    separation: float = 0.0  # correlation ratio of the appearance classes at the final fit
    ppm: float = 0.0  # photo pixels per mm at the board centre
    log: list[str] = field(default_factory=list)
    verify: Blocks | None = None
    correction: Correction | None = None  # smooth displacement of the frame (board bow), when it measurably helps
    lens: Radial | None = None  # radial lens distortion in the photo, when it measurably helps
    rigid_residual_mm: float = math.inf  # the median misfit before a correction (held out after it)
    photo_shape: tuple[int, int] = (0, 0)

    @property
    def warp(self) -> Warp:
        return Warp(self.h, self.lens, self.correction)

    @property
    def inlier_share(self) -> float:
        return self.inliers / max(self.blocks, 1)


class Correction:
    """A smooth displacement of the frame (lens distortion, board bow): the photo shows frame point
    q where the homography puts q + d(q), d a polynomial of total degree ``degree`` in q."""

    def __init__(self, centre: np.ndarray, scale: float, coef: np.ndarray, degree: int):
        self.centre, self.scale, self.coef, self.degree = centre, scale, coef, degree

    @staticmethod
    def _basis(q: np.ndarray, centre: np.ndarray, scale: float, degree: int) -> np.ndarray:
        u = (q - centre) / scale
        return np.stack([u[:, 0] ** i * u[:, 1] ** j for i in range(degree + 1) for j in range(degree + 1 - i)], axis=1)

    @classmethod
    def fit(cls, q: np.ndarray, d: np.ndarray, degree: int = 3, centre: np.ndarray | None = None,
            scale: float | None = None) -> Correction:
        centre = q.mean(0) if centre is None else centre
        scale = float(np.abs(q - centre).max()) or 1.0 if scale is None else scale
        a = cls._basis(q, centre, scale, degree)
        coef, *_ = np.linalg.lstsq(a, d, rcond=None)
        return cls(centre, scale, coef, degree)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        """d(q) for N x 2 frame points."""
        return self._basis(np.asarray(q, np.float64).reshape(-1, 2), self.centre, self.scale, self.degree) @ self.coef

    def inverse(self, q: np.ndarray) -> np.ndarray:
        """The frame point that shows at homography position ``q`` (solves p + d(p) = q)."""
        p = np.asarray(q, np.float64).reshape(-1, 2)
        out = p.copy()
        for _ in range(3):
            out = p - self(out)
        return out


class Radial:
    """Radial lens distortion about the photo's centre: a point the homography puts at u shows at
    p = c + (u - c)(1 + k1 rho^2 + k2 rho^4), rho = |u - c| / R (R: half the photo's diagonal)."""

    def __init__(self, centre: np.ndarray, radius: float, k: np.ndarray):
        self.centre, self.radius, self.k = np.asarray(centre, np.float64), float(radius), np.asarray(k, np.float64)

    def _factor(self, u: np.ndarray) -> np.ndarray:
        rho2 = ((u - self.centre) ** 2).sum(axis=1) / self.radius**2
        return 1 + self.k[0] * rho2 + self.k[1] * rho2**2

    def distort(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, np.float64).reshape(-1, 2)
        return self.centre + (u - self.centre) * self._factor(u)[:, None]

    def undistort(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, np.float64).reshape(-1, 2)
        u = p.copy()
        for _ in range(10):
            u = self.centre + (p - self.centre) / self._factor(u)[:, None]
        return u

    @classmethod
    def fit(cls, q: np.ndarray, p: np.ndarray, centre: np.ndarray, radius: float) -> tuple[Radial, np.ndarray]:
        """Homography and (k1, k2) together, by least squares from frame points ``q`` seen at photo
        points ``p``, starting from the plain homography."""
        h0, _ = cv2.findHomography(q, p, 0)
        h0 = h0 / h0[2, 2]

        def residuals(theta: np.ndarray) -> np.ndarray:
            h = np.append(theta[:8], 1.0).reshape(3, 3)
            return (cls(centre, radius, theta[8:]).distort(apply_h(h, q)) - p).ravel()

        sol = least_squares(residuals, np.append(h0.ravel()[:8], [0.0, 0.0]), x_scale="jac", method="lm")
        return cls(centre, radius, sol.x[8:]), np.append(sol.x[:8], 1.0).reshape(3, 3)


@dataclass
class Warp:
    """Frame mm -> photo px: ``correction`` (frame), then ``h``, then ``lens`` (photo), then ``post``
    (an affine: a crop or a resize of the photo)."""

    h: np.ndarray
    lens: Radial | None = None
    correction: Correction | None = None
    post: np.ndarray = field(default_factory=lambda: np.eye(3))

    @property
    def is_homography(self) -> bool:
        return self.lens is None and self.correction is None

    def homography(self) -> np.ndarray:
        """The projective part, with ``post`` applied."""
        return self.post @ self.h

    def then(self, affine: np.ndarray) -> Warp:
        return Warp(self.h, self.lens, self.correction, affine @ self.post)

    def to_photo(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, np.float64).reshape(-1, 2)
        if self.correction is not None:
            q = q + self.correction(q)
        u = apply_h(self.h, q)
        return apply_h(self.post, self.lens.distort(u) if self.lens is not None else u)

    def to_frame(self, p: np.ndarray) -> np.ndarray:
        u = apply_h(np.linalg.inv(self.post), np.asarray(p, np.float64).reshape(-1, 2))
        if self.lens is not None:
            u = self.lens.undistort(u)
        q = apply_h(np.linalg.inv(self.h), u)
        return self.correction.inverse(q) if self.correction is not None else q


def try_correction(fit: Fit, degree: int = 3, folds: int = 5, min_gain: float = 0.1) -> None:
    """Keep a non-rigid correction of the verification misfits only if it measurably helps: a
    radial lens distortion (photo) or a smooth polynomial displacement of the board (frame, for
    bow), each fitted on four fifths of the blocks and scored on the fifth left out (a sector of
    the board, so extrapolation to its edges is what is scored). The better
    one is kept when it lowers the held-out rms misfit by ``min_gain``; the residual reported
    is then the held-out one, never the in-sample one."""
    v = fit.verify
    fit.rigid_residual_mm = fit.residual_mm
    if v is None or len(v.peaks) < 60:
        return
    err = np.hypot(*v.shifts.T)
    keep = err <= max(3 * float(np.median(err)), 0.1)  # blocks on tall parts are not lens distortion
    q, d = v.centres[keep], v.shifts[keep]
    p = apply_h(fit.h, q + d)  # where the photo shows each block
    # folds are sectors around the blocks' centre, so a fold tests how a correction extrapolates
    # towards the board's edges and corners, where a polynomial goes wrong first
    angle = np.arctan2(*(q - q.mean(0)).T[::-1])
    order = np.argsort(angle, kind="stable")
    centre_q, scale_q = q.mean(0), float(np.abs(q - q.mean(0)).max()) or 1.0
    hh, ww = fit.photo_shape
    centre_p, radius = np.array([(ww - 1) / 2, (hh - 1) / 2]), max(math.hypot(ww, hh) / 2, 1.0)
    held = {"polynomial": np.empty(len(q)), "lens": np.empty(len(q))}
    for test in np.array_split(order, folds):
        train = np.setdiff1d(order, test)
        corr = Correction.fit(q[train], d[train], degree, centre_q, scale_q)
        held["polynomial"][test] = np.hypot(*(d[test] - corr(q[test])).T)
        lens, h = Radial.fit(q[train], p[train], centre_p, radius)
        miss = lens.distort(apply_h(h, q[test])) - p[test]
        held["lens"][test] = np.hypot(*miss.T) / fit.ppm
    # judged by the root mean square: a systematic misfit (lens, bow) shows there; the median of
    # block misfits is mostly matching noise
    before = float(np.sqrt(np.mean(np.hypot(*d.T) ** 2)))
    after = {name: float(np.sqrt(np.mean(e**2))) for name, e in held.items()}
    best = min(after, key=after.get)
    fit.log.append(f"held-out rms misfit {before:.4f} mm; with a lens distortion {after['lens']:.4f}, with a "
                   f"degree-{degree} displacement {after['polynomial']:.4f}")
    if after[best] < (1 - min_gain) * before:
        if best == "lens":
            fit.lens, fit.h = Radial.fit(q, p, centre_p, radius)
        else:
            fit.correction = Correction.fit(q, d, degree, centre_q, scale_q)
        # blocks left out of the fit (misfit above the cut) keep their full misfit in the residual
        all_err = err.copy()
        all_err[np.nonzero(keep)[0]] = held[best]
        fit.residual_mm = float(np.median(all_err))
        fit.p90_mm = float(np.percentile(all_err, 90))


LEVELS = ((2.0, 8.0, 6.0), (4.0, 5.0, 3.0), (8.0, 3.0, 1.2), (16.0, 2.0, 0.5), (32.0, 1.2, 0.25))  # (px/mm, block mm, search mm)


def _template(frame: SideFrame, lab: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    means, counts = class_stats(lab, cls)
    d = projection(means, counts)
    template = (means @ d)[cls].astype(np.float32)
    target = (lab @ d).astype(np.float32)
    return template, target, means


def refine(pyr: PhotoPyramid, frame: SideFrame, h0: np.ndarray, start_search_mm: float | None = None,
           max_ppm: float | None = None, min_peak: float = 0.5, fixed: bool = False) -> Fit:
    """Coarse-to-fine block matching from the start ``h0`` (frame mm -> photo px); see the module docstring.

    ``fixed`` keeps ``h0`` as it is and only runs the verification pass.
    """
    h = h0.copy()
    w_mm, h_mm = frame.size_mm
    centre = (w_mm / 2, h_mm / 2)
    own = photo_ppm(h, centre)
    top = min(max_ppm or 32.0, own)
    levels = [lv for lv in LEVELS if lv[0] <= max(top, LEVELS[0][0])]
    if start_search_mm is not None:
        levels = [lv for lv in levels if lv[2] <= start_search_mm * 1.01] or levels[-1:]
    fit = Fit(h, frame.side, ppm=own)
    for ppm, block_mm, search_mm in [] if fixed else levels:
        cls, grid = frame.classes(ppm), frame.grid(ppm)
        for _ in range(2):
            lab = warp_to_frame(pyr, h, grid, cls.shape, centre)
            template, target, _ = _template(frame, lab, cls)
            # no peak test here: RANSAC takes care of ridge matches, and the coarse levels need every block
            blocks = match_blocks(template, target, cls > OUTSIDE, grid, block_mm, search_mm, min_peak, sharpness=0.0)
            fit.log.append(f"{ppm:g} px/mm: {len(blocks.peaks)}/{blocks.tried} blocks")
            if len(blocks.peaks) < 8:
                break
            new = _fit_h(h, blocks, max(1.5 / ppm, 0.08))
            if new is None:
                break
            h = new
    fit.h = h
    fit.ppm = photo_ppm(h, centre)
    fit.photo_shape = pyr.shape
    final = min(top, LEVELS[-1][0])
    _verify(pyr, frame, fit, final, min_peak)
    # the verification's peaks are the sharpest matches there are: a last least-squares fit on
    # those that agree removes what is left of an affine misfit, then the residual is measured again
    for _ in range(0 if fixed else 2):
        v = fit.verify
        if v is None or fit.inliers < 12:
            break
        keep = np.hypot(*v.shifts.T) <= max(1.5 / final, 0.1)
        new, _ = cv2.findHomography(v.centres[keep], apply_h(fit.h, v.centres[keep] + v.shifts[keep]), 0)
        if new is None:
            break
        fit.h = new / new[2, 2]
        _verify(pyr, frame, fit, final, min_peak)
    return fit


def _fit_h(h: np.ndarray, blocks: Blocks, thr_mm: float) -> np.ndarray | None:
    src = blocks.centres
    dst = apply_h(h, blocks.centres + blocks.shifts)
    scale = photo_ppm(h, tuple(src.mean(0)))
    new, inl = cv2.findHomography(src, dst, cv2.RANSAC, thr_mm * scale, maxIters=4000, confidence=0.999)
    if new is None or inl is None or inl.sum() < 8:
        return None
    keep = inl.ravel() > 0
    new, _ = cv2.findHomography(src[keep], dst[keep], 0)
    return None if new is None else new / new[2, 2]


def _verify(pyr: PhotoPyramid, frame: SideFrame, fit: Fit, ppm: float, min_peak: float) -> None:
    """Block displacements at the fit, with the strict peak test: the residual the labels carry."""
    level = min(LEVELS, key=lambda lv: abs(lv[0] - ppm))
    ppm, block_mm, _ = level
    cls, grid = frame.classes(ppm), frame.grid(ppm)
    w_mm, h_mm = frame.size_mm
    lab = warp_to_frame(pyr, fit.h, grid, cls.shape, (w_mm / 2, h_mm / 2))
    template, target, _ = _template(frame, lab, cls)
    fit.separation = separation(lab, cls)
    search = max(4 / ppm, 0.8)  # wide enough to measure a misfit above the 0.3 mm limit, not only below it
    blocks = match_blocks(template, target, cls > OUTSIDE, grid, block_mm, search, min_peak)
    fit.verify, fit.tried, fit.blocks = blocks, blocks.tried, len(blocks.peaks)
    if not len(blocks.peaks):
        return
    err = np.hypot(*blocks.shifts.T)
    thr = max(1.5 / ppm, 0.1)
    inl = err <= thr
    fit.inliers = int(inl.sum())
    fit.residual_mm = float(np.median(err))
    fit.p90_mm = float(np.percentile(err, 90))
    fit.rms_mm = float(np.sqrt(np.mean(err[inl] ** 2))) if inl.any() else math.inf
    if fit.inliers >= 3:
        hull = cv2.convexHull(blocks.centres[inl].astype(np.float32))
        board_area = frame.labels.board.sum() / frame.ppm**2
        fit.coverage = float(min(1.0, cv2.contourArea(hull) / max(board_area, 1e-9)))
