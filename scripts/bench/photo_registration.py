"""Photo <-> Gerber registration: seconds and residual per photo on ../shared/data/board-photos.

    python scripts/bench/photo_registration.py

Runs ``pcbseg-import photos`` on the six boards (the documented command, with the pdp11_panel
region that differs from its files ignored) and reads each photo's time and residual from the
``registration.json`` it writes. Targets (issue 11): at most 30 s per photo on 2 cores; median
residual at most 0.15 mm on bare top-down photos and 0.3 mm on the others.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "board-photos"
PDP11_DIFFERS = ["pdp11_panel=174.6,-71.3,212.3,-54.2", "pdp11_panel=181.2,-90.4,188.7,-83.8"]


def main() -> None:
    boards = sorted(p for p in PHOTOS.iterdir() if p.is_dir())
    out = Path(tempfile.mkdtemp()) / "photos"
    cmd = ["pcbseg-import", "photos", *map(str, boards), "--out", str(out)]
    for region in PDP11_DIFFERS:
        cmd += ["--ignore-region", region]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    total = time.perf_counter() - start
    state = {}
    for b in boards:
        for p in json.loads((b / "board.json").read_text()).get("photos", []):
            state[(b.name, p["file"])] = (p.get("state", "?"), p.get("view", "?"))
    rows = ["| image | photo (MP) | state, view | seconds | residual mm | p90 mm |", "|---|---|---|---|---|---|"]
    bare, other, seconds = [], [], []
    for r in json.loads((out / "registration.json").read_text()):
        st, view = state.get((r["board"], r["photo"]), ("?", "?"))
        if not r["written"]:
            rows.append(f"| {r['id']} | | {st}, {view} | {r['seconds']} | not confident | |")
            continue
        (bare if (st, view) == ("bare", "top-down") else other).append(r["residual_mm"])
        seconds.append(r["seconds"])
        mp = r["size"][0] * r["size"][1] / 1e6
        rows.append(f"| {r['id']} | {mp:.1f} (crop) | {st}, {view} | {r['seconds']} | {r['residual_mm']:.3f} | "
                    f"{r['p90_mm']:.3f} |")
    body = "\n".join([
        f"The whole import of {len(boards)} boards took {total:.0f} s ({len(seconds)} board images written). Seconds per "
        "photo: registration, label transfer and writing, after the board's files are read once. Median residual "
        f"{np.median(bare):.3f} mm on bare top-down images (target 0.15), {np.median(other):.3f} mm on the others "
        f"(target 0.3); slowest photo {max(seconds):.0f} s (target 30).", "", *rows])
    write_section("photo_registration", "Photo ↔ Gerber registration (pcbseg-import photos)", body)


if __name__ == "__main__":
    main()
