"""How well the leakage check separates copies from distinct pictures, and what it costs.

    python scripts/bench/leak_check.py

1. Separation: 30 synthetic boards and 40 real resistor crops, each with one copy made the way
   labelling tools make them (a random 70-95% crop zoomed back, a 90° turn, a mirror half the
   time, brightness x0.7-1.3 and a shift of up to ±20 grey levels). Reports the worst copy and the
   most similar pair of distinct pictures.
2. Re-shots against different boards: the same board photographed again (perspective, a turn,
   gamma, white balance, focus) must be found; photos of different boards, and different synthetic
   boards of one layout generator, must not. Real photos from ../shared/data/board-photos.
3. Shortlist against every pair, on the 400 resistor crops split by file name: leaks found, the
   duplicate groups, and the time each way.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section

from pcbseg.data.layout import DatasetLayout, read_image
from pcbseg.data.leakage import Fingerprint, compare, duplicate_groups, find_leaks
from pcbseg.data.splits import read_splits
from pcbseg.data.synth import render_board

RESISTOR = Path(__file__).resolve().parents[3] / "shared" / "data" / "pcb-resistor"
PHOTOS = RESISTOR.parent / "board-photos"


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    s = rng.uniform(0.7, 0.95)
    ch, cw = int(h * s), int(w * s)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    out = cv2.resize(img[y:y + ch, x:x + cw], (w, h))
    out = np.clip(out.astype(float) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
    out = np.rot90(out, rng.integers(4))
    return np.ascontiguousarray(out[:, ::-1] if rng.random() < 0.5 else out)


def reshoot(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same board photographed again: corners moved up to 8% (perspective), turned by 90/180/270°,
    gamma 0.6-1.6, white balance ±20% per channel, focus blur sigma 0.3-1.5 px."""
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src + rng.uniform(-0.08, 0.08, (4, 2)) * [w, h]).astype(np.float32)
    out = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REFLECT)
    out = (255 * (out / 255.0) ** rng.uniform(0.6, 1.6) * rng.uniform(0.8, 1.2, 3)).clip(0, 255).astype(np.uint8)
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.5))
    return np.ascontiguousarray(np.rot90(out, rng.integers(1, 4)))


def reshots(rng: np.random.Generator) -> list[str]:
    """Rows: found / flagged per kind of pair."""
    photos = {}
    for board in sorted(p for p in PHOTOS.iterdir() if (p / "board.json").is_file()):
        for ph in json.loads((board / "board.json").read_text())["photos"]:
            img = read_image(board / "photos" / ph["file"])
            s = 1024 / max(img.shape[:2])
            photos[f"{board.name}/{ph['file']}"] = (cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA),
                                                    board.name, ph["side"])
    prints = {k: Fingerprint.of(v[0]) for k, v in photos.items()}
    synth = [render_board(i, 192)[0] for i in range(100, 130)]
    sprints = [Fingerprint.of(x) for x in synth]
    pairs = list(itertools.combinations(photos, 2))
    same_side = [(a, b) for a, b in pairs if photos[a][1:] == photos[b][1:]]
    other_board = [(a, b) for a, b in pairs if photos[a][1] != photos[b][1]]
    kinds: dict[str, tuple[bool | None, list]] = {
        "real photo re-shot (13 photos of 6 boards, 1024 px)":
            (True, [best(prints[k], Fingerprint.of(reshoot(v[0], rng))) for k, v in photos.items()]),
        "synthetic board re-shot (30)":
            (True, [best(p, Fingerprint.of(reshoot(x, rng))) for p, x in zip(sprints, synth, strict=True)]),
        "real photos of different boards (all pairs)": (False, [best(prints[a], prints[b]) for a, b in other_board]),
        "different synthetic boards, one generator (all pairs)":
            (False, [best(a, b) for a, b in itertools.combinations(sprints, 2)]),
        "same board and side, bare vs assembled (real)": (None, [best(prints[a], prints[b]) for a, b in same_side]),
    }
    out = []
    for name, (should, ms) in kinds.items():
        flagged = sum(m.duplicate for m in ms)
        verdict = "found" if should else ("wrongly flagged" if should is False else "flagged")
        out.append(f"| {name} | {flagged}/{len(ms)} {verdict} | {min(m.inliers for m in ms)}-{max(m.inliers for m in ms)} | "
                   f"{min(m.correlation for m in ms):.3f}-{max(m.correlation for m in ms):.3f} |")
    return out


def best(a: Fingerprint, b: Fingerprint):
    m1, m2 = compare(a, b), compare(b, a)
    return max(m1, m2, key=lambda m: (m.duplicate, m.correlation))


def separation(name: str, names: list[str], images: list[np.ndarray], rng: np.random.Generator) -> str:
    t = time.perf_counter()
    prints = [Fingerprint.of(i) for i in images]
    copies = [Fingerprint.of(augment(i, rng)) for i in images]
    per_image = (time.perf_counter() - t) / (2 * len(images))
    t = time.perf_counter()
    same = [best(p, c) for p, c in zip(prints, copies, strict=True)]
    pairs = [(i, j) for i in range(len(prints)) for j in range(len(prints)) if i != j]
    diff = [best(prints[i], copies[j]) for i, j in pairs]
    flagged = sorted({tuple(sorted((names[i], names[j]))) for (i, j), m in zip(pairs, diff, strict=True) if m.duplicate})
    per_pair = (time.perf_counter() - t) / (2 * (len(same) + len(diff)))  # best() compares both ways
    h, w = images[0].shape[:2]
    return (f"| {name} ({len(images)}, {w}x{h} px) | {sum(m.duplicate for m in same)}/{len(same)} | "
            f"{min(m.correlation for m in same):.3f} | {sum(m.duplicate for m in diff)}/{len(diff)} | "
            f"{max(m.correlation for m in diff if not m.duplicate):.3f} | {', '.join('/'.join(f) for f in flagged) or '-'} | "
            f"{1000 * per_image:.1f} | {1000 * per_pair:.2f} |")


def main() -> None:
    rng = np.random.default_rng(0)
    crops = sorted((RESISTOR / "image").iterdir())
    boards = [render_board(i, 192)[0] for i in range(30)]
    rows = [separation("synthetic boards", [f"board{i}" for i in range(30)], boards, rng),
            separation("resistor crops", [p.stem for p in crops[:40]], [read_image(p) for p in crops[:40]], rng)]
    shots = reshots(rng) if PHOTOS.is_dir() else ["| (../shared/data/board-photos absent) | | | |"]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pcb-resistor"
        subprocess.run(["pcbseg-import", "masks", str(RESISTOR / "image"), str(RESISTOR / "GT"), "--out", str(root),
                        "--mode", "binary", "--foreground", "dark", "--classes", "background,resistor"],
                       check=True, capture_output=True)
        splits = {r.id: r.split for r in read_splits(root / "splits.csv")}
        files, _ = DatasetLayout(root).image_files()
        prints = {i: Fingerprint.of(read_image(p)) for i, p in files.items()}
        timed = {}
        for exhaustive in (True, False):
            t = time.perf_counter()
            leaks = find_leaks(prints, splits, exhaustive=exhaustive)
            t_leaks = time.perf_counter() - t
            t = time.perf_counter()
            groups = duplicate_groups(prints, {i: i for i in prints}, exhaustive=exhaustive)
            timed[exhaustive] = ({(lk.a, lk.b) for lk in leaks}, t_leaks, groups, time.perf_counter() - t)
    n_val = sum(s == "val" for s in splits.values())
    (la, ta, ga, tga), (lb, tb, gb, tgb) = timed[True], timed[False]

    def partition(g: dict[str, str]) -> set[frozenset[str]]:
        return {frozenset(i for i in g if g[i] == k) for k in set(g.values())}

    body = (
        "**Separation.** One copy per picture; a copy is found when it is flagged as a duplicate of its source. "
        "\"Other files flagged\" counts a picture's copy flagged against another file (each way), and names those files: "
        "among the resistor crops they are the set's own re-shot copies of one part (104/108 and 105/109 were "
        "checked by eye: the same resistor), the leak the check is for; 10/112 and 130/132 are flagged since the "
        "homography and blur: the same marking (913, 334), but the solder looks different by eye, so they may be two "
        "parts of one type (not settled). Correlation is the rank correlation of the "
        "overlapping pixels after the keypoint-fitted transform (the decision needs ≥ 0.9, ≥ 8 agreeing keypoints "
        "spread over ≥ 5% of the picture).\n\n"
        "| pictures | copies found | lowest copy correlation | other files flagged | highest correlation not "
        "flagged | files flagged | ms per picture | ms per comparison |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
        + "\n\n"
        "**Re-shots against different boards.** A re-shot moves the corners by up to 8% (perspective), turns the picture, "
        "and changes gamma, white balance and focus; the transform is a homography, so the pixels still line up. "
        "Before the homography and the blur (a similarity transform and raw pixels, ≥ 4 keypoints), 2 of the 13 real "
        "re-shots were found, with correlations of 0.68-0.90 at 39-133 agreeing keypoints. Bare against assembled photos "
        "of one board side are a different picture of the same board: reported, neither required nor wrong.\n\n"
        "| pairs | verdict | agreeing keypoints | correlation |\n|---|---|---|---|\n" + "\n".join(shots) + "\n\n"
        f"**Shortlist against every pair**, on the 400 resistor crops split by file name ({n_val} in val):\n\n"
        "| | every pair | shortlist (8 candidates per picture) |\n|---|---|---|\n"
        f"| near-duplicate pairs across splits | {len(la)} in {ta:.1f} s | {len(lb)} in {tb:.1f} s "
        f"({'the same pairs' if la == lb else f'{len(la - lb)} missed, {len(lb - la)} extra'}) |\n"
        f"| `--group-duplicates` groups of the 400 | {len(set(ga.values()))} in {tga:.1f} s | {len(set(gb.values()))} in "
        f"{tgb:.1f} s ({'the same groups' if partition(ga) == partition(gb) else 'different groups'}) |\n\n"
        "Fingerprints (SIFT on both the picture and its mirror) are computed once and not counted in the times."
    )
    write_section("leak_check", "Leakage check: separation and cost", body)


if __name__ == "__main__":
    main()
