"""Gerber import time per board and per megapixel of labels, on the six boards in ../shared/data/gerbers.

    python scripts/bench/gerber_import.py [--px-per-mm 20] [--renders 8] [--size 512]

Times the three stages separately (parse + label both sides, one whole-side render per side, the
crops) and then the whole ``pcbseg-import gerber`` command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section

from pcbseg.data.gerber.labels import label_board
from pcbseg.data.gerber.render import render_crop, render_full
from pcbseg.taxonomy import get_taxonomy

GERBERS = Path(__file__).resolve().parents[3] / "shared" / "data" / "gerbers"
BOARDS = ["ferris", "tfrpm01", "snappergps", "pluto_f91w", "nrfmicro", "wulpus_hv"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--px-per-mm", type=float, default=20.0)
    ap.add_argument("--renders", type=int, default=8)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    tax = get_taxonomy("default")
    rows = []
    total_mp = total_label = 0.0
    for name in BOARDS:
        t0 = time.perf_counter()
        _, sides = label_board(GERBERS / name, args.px_per_mm)
        t1 = time.perf_counter()
        rng = np.random.default_rng(0)
        for side in sides:
            render_full(side, tax, rng)
        t2 = time.perf_counter()
        for side in sides:
            for _ in range(args.renders):
                render_crop(side, tax, rng, args.size)
        t3 = time.perf_counter()
        mp = sum(s.board.size for s in sides) / 1e6
        n_objects = sum(s.by_attribute + s.by_rule for s in sides)
        total_mp += mp
        total_label += t1 - t0
        h, w = sides[0].board.shape
        rows.append(f"| {name} | {w / args.px_per_mm:.1f} x {h / args.px_per_mm:.1f} | {len(sides)} | {n_objects} | "
                    f"{mp:.2f} | {t1 - t0:.2f} | {(t1 - t0) / mp:.2f} | {t2 - t1:.2f} | "
                    f"{(t3 - t2) / max(1, args.renders * len(sides)):.3f} |")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["pcbseg-import", "gerber", *(str(GERBERS / b) for b in BOARDS), "--out", f"{tmp}/ds",
               "--px-per-mm", str(args.px_per_mm), "--renders", str(args.renders), "--size", str(args.size)]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        whole = time.perf_counter() - t
        n_images = len(list(Path(tmp, "ds", "images").iterdir()))
    body = (
        f"Labels at {args.px_per_mm:g} px/mm for both sides of each board (canvas = board outline + 1 mm margin), "
        f"{args.renders} crops of {args.size} px per side. One process.\n\n"
        "| board | size (mm) | sides | copper objects | label megapixels (both sides) | parse + label (s) | "
        "s per megapixel | whole-side renders (s) | s per crop |\n|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nParsing and labelling: {total_label:.1f} s for {total_mp:.1f} megapixels "
        f"({total_label / total_mp:.2f} s per megapixel). The whole command (`pcbseg-import gerber` on the six "
        f"boards, {n_images} images written): **{whole:.1f} s**. Parsing and labelling follow the number of objects "
        "(copper, and silkscreen strokes: snappergps's bottom legend alone has 16,700) and, for boards labelled by "
        "rule, one soldermask test per flash, more than the area."
    )
    write_section("gerber_import", "Gerber import time", body)


if __name__ == "__main__":
    main()
