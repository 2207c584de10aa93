"""Near-duplicate images across splits: the leakage check behind ``pcbseg-import check``.

Labelling tools export augmented copies of one photo (rotated by 90°, flipped, brighter, cropped
and zoomed) under new names. If one copy lands in train and another in val, the holdout is no
longer honest. Group names catch most of this; this check looks at the pixels.

How two images are compared: SIFT keypoints (OpenCV; invariant to rotation, scale and brightness)
of one are matched against those of the other and of its mirror image; RANSAC fits a similarity
transform and, from 8 matches up, a homography, so a board photographed again from another angle
still lines up (the better-fitting of the two counts); the first image is warped onto the second, both are blurred a little
(focus and JPEG differ between shots), and the pixels where they overlap must correlate by rank
(Spearman, so brightness, gamma, contrast and clipped highlights do not matter). A pair is a
near-duplicate when at least ``min_inliers`` keypoints agree on the transform, spread over at least
``MIN_SPREAD`` of the image, *and* the overlap correlates at ``min_correlation`` or more. The last
two tests keep distinct boards that share identical parts (one connector or logo) from being flagged.

Up to ``EXHAUSTIVE_PAIRS`` pairs are all compared; above that, each image is compared only with
the ``SHORTLIST`` images that share the most similar keypoints with it (one FLANN index over all
descriptors). How well copies and distinct pictures separate, what a comparison costs, and how the
shortlist compares with comparing every pair: docs/benchmarks.md, "Leakage check"
(``scripts/bench/leak_check.py``).

Example:
    >>> from pcbseg.data.synth import render_board
    >>> a, b = render_board(1, 160)[0], render_board(2, 160)[0]
    >>> copy = np.rot90(a[10:150, 20:150])[:, ::-1]    # turned, mirrored, cropped
    >>> fa, fb, fc = (Fingerprint.of(x) for x in (a, b, copy))
    >>> compare(fa, fc).duplicate, compare(fa, fb).duplicate
    (True, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pcbseg.data.layout import DatasetLayout, read_image
from pcbseg.data.splits import SplitRow, read_splits

MIN_INLIERS = 8
SHORTLIST = 8  # candidates per image when the pairs are too many to compare them all
EXHAUSTIVE_PAIRS = 20_000
MIN_CORRELATION = 0.9
_WORK_SIZE = 256  # long side: comparing costs the same for a phone photo and a small crop
_MIN_OVERLAP = 0.3  # of the smaller image: below this the correlation says little
MIN_SPREAD = 0.05  # convex hull of the agreeing keypoints, as a share of the image: one shared part is not a picture
_BLUR = 1.5  # px at the working size, before correlating


@dataclass(frozen=True)
class Fingerprint:
    grey: np.ndarray
    points: tuple[np.ndarray, np.ndarray]  # keypoints of the image and of its mirror (x -> w-1-x)
    descriptors: tuple[np.ndarray | None, np.ndarray | None]

    @classmethod
    def of(cls, image: np.ndarray, features: int = 250) -> Fingerprint:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        scale = _WORK_SIZE / max(grey.shape)
        if scale != 1:  # small crops are enlarged too: SIFT finds few keypoints in a 100-px image
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        sift = cv2.SIFT_create(nfeatures=features)
        pts, descs = [], []
        for view in (grey, np.ascontiguousarray(grey[:, ::-1])):
            kps, d = sift.detectAndCompute(view, None)
            pts.append(np.float32([k.pt for k in kps]).reshape(-1, 2))
            descs.append(d)
        return cls(np.ascontiguousarray(grey), (pts[0], pts[1]), (descs[0], descs[1]))


@dataclass(frozen=True)
class Match:
    inliers: int
    correlation: float
    mirrored: bool
    min_inliers: int = MIN_INLIERS
    min_correlation: float = MIN_CORRELATION
    spread: float = 1.0

    @property
    def duplicate(self) -> bool:
        return self.inliers >= self.min_inliers and self.spread >= MIN_SPREAD and self.correlation >= self.min_correlation


_matcher = cv2.BFMatcher(cv2.NORM_L2)


def _ranks(v: np.ndarray) -> np.ndarray:
    """Grey levels -> their mean rank (ties share one, as Spearman's correlation wants)."""
    q = np.clip(np.rint(v), 0, 255).astype(np.intp)
    counts = np.bincount(q, minlength=256)
    return (np.cumsum(counts) - (counts - 1) / 2)[q]


def compare(a: Fingerprint, b: Fingerprint, min_inliers: int = MIN_INLIERS,
            min_correlation: float = MIN_CORRELATION) -> Match:
    """How well ``a`` maps onto ``b`` or onto ``b`` mirrored (the better of the two)."""
    best = Match(0, 0.0, False, min_inliers, min_correlation)
    da = a.descriptors[0]
    if da is None or len(da) < 2:
        return best
    for mirrored in (False, True):
        db, pb = b.descriptors[mirrored], b.points[mirrored]
        if db is None or len(db) < 2:
            continue
        good = [m[0] for m in _matcher.knnMatch(da, db, k=2) if len(m) == 2 and m[0].distance < 0.75 * m[1].distance]
        if len(good) < max(4, min_inliers // 2):
            continue
        src = a.points[0][[m.queryIdx for m in good]]
        dst = pb[[m.trainIdx for m in good]]
        target = b.grey[:, ::-1] if mirrored else b.grey
        blurred = cv2.GaussianBlur(target.astype(np.float32), (0, 0), _BLUR)
        for transform, inl in _fits(src, dst):
            cand = _judge(a, target, blurred, transform, inl, src, mirrored, min_inliers, min_correlation)
            if cand is not None and (cand.duplicate, cand.correlation) > (best.duplicate, best.correlation):
                best = cand
    return best


def _fits(src: np.ndarray, dst: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """A similarity and, from 8 matches up, a homography (a re-shot from another angle), RANSAC both.

    Both are tried: with few matches a homography fits noise where the similarity is right. A
    homography that folds, squashes by more than 10x or tilts like no camera would is not trusted.
    """
    out = []
    sim, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=4.0)
    if sim is not None:
        out.append((sim, inl))
    if len(src) >= 8:
        h, inl = cv2.findHomography(src, dst, cv2.RANSAC, 4.0)
        if h is not None and 0.1 < abs(np.linalg.det(h[:2, :2])) < 10 and np.abs(h[2, :2]).max() < 0.005:
            out.append((h, inl))
    return out


def _judge(a: Fingerprint, target: np.ndarray, blurred: np.ndarray, transform: np.ndarray, inl: np.ndarray,
           src: np.ndarray, mirrored: bool, min_inliers: int, min_correlation: float) -> Match | None:
    """Warp ``a`` onto ``target`` and score the overlap; None when the overlap is too small or flat."""
    h, w = target.shape
    warp = cv2.warpPerspective if transform.shape == (3, 3) else cv2.warpAffine
    warped = warp(cv2.GaussianBlur(a.grey.astype(np.float32), (0, 0), _BLUR), transform, (w, h),
                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    valid = ~np.isnan(warped)
    if valid.sum() < _MIN_OVERLAP * min(a.grey.size, target.size):
        return None
    x, y = warped[valid], blurred[valid]
    if x.std() < 1 or y.std() < 1:  # flat overlaps correlate by chance
        return None
    # rank correlation: a brightness change that clips highlights is still a monotonic one
    corr = float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])
    kept = src[inl.ravel().astype(bool)].astype(np.float32)
    spread = cv2.contourArea(cv2.convexHull(kept)) / a.grey.size if len(kept) >= 3 else 0.0
    return Match(int(inl.sum()), corr, mirrored, min_inliers, min_correlation, spread)


@dataclass(frozen=True)
class Leak:
    a: str
    split_a: str
    b: str
    split_b: str
    inliers: int
    correlation: float


def candidate_pairs(prints: Mapping[str, Fingerprint], labels: Mapping[str, str],
                    per_image: int = SHORTLIST) -> set[tuple[str, str]]:
    """For each image, the ``per_image`` images with another label (split, or group) that share the most
    similar keypoints with it: one FLANN index over every image's descriptors (and its mirror's),
    so the cost grows as N log N, not N². Pairs come back as ``(a, b)`` with ``a < b``.
    """
    ids = sorted(prints)
    label = np.array([labels[i] for i in ids])
    pool, owner = [], []
    for k, i in enumerate(ids):
        for d in prints[i].descriptors:
            if d is not None and len(d):
                pool.append(d)
                owner.append(np.full(len(d), k))
    if not pool:
        return set()
    pool_arr, owner_arr = np.concatenate(pool).astype(np.float32), np.concatenate(owner)
    flann = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 4}, {"checks": 32})  # 1 = KD-tree
    flann.add([pool_arr])
    flann.train()
    k_nn = min(8, len(pool_arr))
    out: set[tuple[str, str]] = set()
    for q, i in enumerate(ids):
        d = prints[i].descriptors[0]
        if d is None or not len(d):
            continue
        votes = np.zeros(len(ids))
        for matches in flann.knnMatch(d.astype(np.float32), k=k_nn):
            others = [(m.distance, int(owner_arr[m.trainIdx])) for m in matches if owner_arr[m.trainIdx] != q]
            if not others:
                continue
            # a vote for every image holding a descriptor about as close as the closest one
            near = {o for dist, o in others if dist <= 1.25 * others[0][0] + 1e-6}
            votes[list(near)] += 1
        votes[label == label[q]] = 0
        for j in np.argsort(-votes)[:per_image]:
            if votes[j] > 0:
                out.add((min(i, ids[j]), max(i, ids[j])))
    return out


def find_leaks(prints: Mapping[str, Fingerprint], splits: Mapping[str, str], min_inliers: int = MIN_INLIERS,
               min_correlation: float = MIN_CORRELATION, exhaustive: bool | None = None) -> list[Leak]:
    """Pairs of images in different splits that show the same picture, most similar first.

    ``exhaustive``: compare every cross-split pair (True), or only each image's best candidates
    from :func:`candidate_pairs` (False); None picks the shortlist above ``EXHAUSTIVE_PAIRS`` pairs.
    """
    pairs = _pairs(prints, splits, exhaustive)
    leaks = []
    for a, b in pairs:
        m = compare(prints[a], prints[b], min_inliers, min_correlation)
        if not m.duplicate:  # a crop of b is found from b's side: compare the other way too
            m = compare(prints[b], prints[a], min_inliers, min_correlation)
        if m.duplicate:
            leaks.append(Leak(a, splits[a], b, splits[b], m.inliers, round(m.correlation, 4)))
    return sorted(leaks, key=lambda lk: (-lk.correlation, lk.a, lk.b))


def _pairs(prints: Mapping[str, Fingerprint], labels: Mapping[str, str], exhaustive: bool | None) -> list[tuple[str, str]]:
    """The pairs to compare: every pair with different labels, or the shortlist when there are too many."""
    ids = sorted(prints)
    every = [(a, b) for j, b in enumerate(ids) for a in ids[:j] if labels[a] != labels[b]]
    if exhaustive or (exhaustive is None and len(every) <= EXHAUSTIVE_PAIRS):
        return every
    return sorted(candidate_pairs(prints, labels))


def duplicate_groups(prints: Mapping[str, Fingerprint], groups: Mapping[str, str], min_inliers: int = MIN_INLIERS,
                     min_correlation: float = MIN_CORRELATION, exhaustive: bool | None = None) -> dict[str, str]:
    """Merge groups that share a near-duplicate picture; every id -> the (alphabetically first) merged group.

    Compares the pairs of images in different groups (all of them, or a shortlist: see :func:`find_leaks`).
    """
    parent = {g: g for g in groups.values()}

    def find(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    for a, b in _pairs(prints, groups, exhaustive):
        ga, gb = find(groups[a]), find(groups[b])
        if ga == gb:
            continue
        if compare(prints[a], prints[b], min_inliers, min_correlation).duplicate or \
                compare(prints[b], prints[a], min_inliers, min_correlation).duplicate:
            parent[max(ga, gb)] = min(ga, gb)
    return {i: find(groups[i]) for i in sorted(prints)}


def check_dataset_leaks(root: str | Path, rows: list[SplitRow] | None = None, min_inliers: int = MIN_INLIERS,
                        min_correlation: float = MIN_CORRELATION) -> list[Leak]:
    """Near-duplicates across the splits of a dataset in the canonical layout."""
    rows = rows if rows is not None else read_splits(DatasetLayout(root).splits)
    splits = {r.id: r.split for r in rows}
    files, _ = DatasetLayout(root).image_files()
    prints = {i: Fingerprint.of(read_image(p)) for i, p in files.items() if i in splits}
    return find_leaks(prints, splits, min_inliers, min_correlation)


def leak_table(leaks: list[Leak], limit: int = 50) -> list[str]:
    """Markdown rows for a report."""
    lines = ["| image | split | near-duplicate | split | keypoints | correlation |", "|---|---|---|---|---|---|"]
    lines += [f"| {lk.a} | {lk.split_a} | {lk.b} | {lk.split_b} | {lk.inliers} | {lk.correlation:.3f} |" for lk in leaks[:limit]]
    if len(leaks) > limit:
        lines.append(f"| ... {len(leaks) - limit} more | | | | | |")
    return lines
