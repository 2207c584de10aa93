"""Foreground IoU on real photos: import ../shared/data/pcb-resistor, train experiment=resistor.

    python scripts/bench/resistor.py [extra pcbseg-train overrides...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section

SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "pcb-resistor"


def main() -> None:
    work = Path(tempfile.mkdtemp())
    subprocess.run(["pcbseg-import", "masks", str(SOURCE / "image"), str(SOURCE / "GT"), "--out",
                    str(work / "data" / "pcb-resistor"), "--mode", "binary", "--foreground", "dark",
                    "--classes", "background,resistor"], check=True)
    cmd = [sys.executable, "-m", "pcbseg.cli.train", "experiment=resistor", "~callbacks.progress_bar",
           f"hydra.run.dir={work / 'run'}", *sys.argv[1:]]
    subprocess.run(cmd, cwd=work, check=True)
    s = json.loads((work / "run" / "summary.json").read_text())
    iou = s["val"]["per_class_iou"]
    body = (
        "400 real greyscale SMD-resistor crops (`../shared/data/pcb-resistor`, JPEG masks thresholded at 127, "
        "the dark side is the resistor), imported with `pcbseg-import masks ... --mode binary --foreground dark`; "
        "80 held out. `pcbseg-train experiment=resistor` (Unet + EfficientNet-Lite0, 128 px crops, "
        f"{s['epochs']} epochs on CPU, {s['wall_time_s']:.0f} s).\n\n"
        "| class | holdout IoU |\n|---|---|\n"
        + "\n".join(f"| {k} | {v:.3f} |" for k, v in iou.items())
        + f"\n\n**Foreground (resistor) IoU: {iou['resistor']:.3f}**; mIoU {s['val']['mIoU']:.3f}, "
        f"pixel error rate {s['val']['pixel_error_rate']:.4f}."
    )
    write_section("resistor", "Real photos: SMD resistors (pcb-resistor)", body)


if __name__ == "__main__":
    main()
