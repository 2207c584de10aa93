"""Boards per second of the synthetic renderer, one process and the whole pcbseg-synth path.

    python scripts/bench/synth_speed.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section

from pcbseg.data.synth import render_board, write_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 320, 512])
    ap.add_argument("--boards", type=int, default=100)
    args = ap.parse_args()
    rows = ["| size (px) | render only, 1 process (boards/s) | `write_dataset`, all cores (boards/s) |", "|---|---|---|"]
    for size in args.sizes:
        n = max(10, args.boards // 4)
        render_board(0, size)  # warm-up: imports, cv2 thread pool
        t = time.perf_counter()
        for seed in range(n):
            render_board(seed, size)
        single = n / (time.perf_counter() - t)
        tmp = Path(tempfile.mkdtemp())
        t = time.perf_counter()
        write_dataset(tmp / "d", num_boards=args.boards, size=size)
        full = args.boards / (time.perf_counter() - t)
        shutil.rmtree(tmp)
        rows.append(f"| {size} | {single:.1f} | {full:.1f} |")
        print(rows[-1], flush=True)
    tmp = Path(tempfile.mkdtemp())
    t = time.perf_counter()
    write_dataset(tmp / "d", num_boards=400, size=320)  # what data=synthetic generates by default
    default_s = time.perf_counter() - t
    shutil.rmtree(tmp)
    body = "\n".join(rows) + (
        f"\n\n`write_dataset` renders {args.boards} boards on {os.cpu_count()} cores (spawned worker processes) and writes "
        "PNG image + mask + splits; its time includes process start-up.\n\n"
        f"The default synthetic set (`data=synthetic`: 400 boards at 320 px) took **{default_s:.1f} s** to generate."
    )
    write_section("synth", "Synthetic board generation", body)


if __name__ == "__main__":
    main()
