"""How well the leakage check separates copies from distinct pictures, and what it costs.

    python scripts/bench/leak_check.py

1. Separation: 30 synthetic boards and 40 real resistor crops, each with one copy made the way
   labelling tools make them (a random 70-95% crop zoomed back, a 90° turn, a mirror half the
   time, brightness x0.7-1.3 and a shift of up to ±20 grey levels). Reports the worst copy and the
   most similar pair of distinct pictures.
2. Shortlist against every pair, on the 400 resistor crops split by file name: leaks found, the
   duplicate groups, and the time each way.
"""

from __future__ import annotations

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


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    s = rng.uniform(0.7, 0.95)
    ch, cw = int(h * s), int(w * s)
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    out = cv2.resize(img[y:y + ch, x:x + cw], (w, h))
    out = np.clip(out.astype(float) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
    out = np.rot90(out, rng.integers(4))
    return np.ascontiguousarray(out[:, ::-1] if rng.random() < 0.5 else out)


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
        "checked by eye: the same resistor), the leak the check is for. Correlation is the rank correlation of the "
        "overlapping pixels after the keypoint-fitted transform (the decision needs ≥ 0.9 and ≥ 4 agreeing keypoints).\n\n"
        "| pictures | copies found | lowest copy correlation | other files flagged | highest correlation not "
        "flagged | files flagged | ms per picture | ms per comparison |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
        + "\n\n"
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
