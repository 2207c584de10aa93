"""bfloat16 mixed precision against float32 for training on CPU: holdout mIoU and wall time, same seed.

    python scripts/bench/cpu_bf16.py --work /tmp/b16            # trains 4 runs (about 25 min on 2 cores)
    python scripts/bench/cpu_bf16.py --work /tmp/b16 --reuse    # report the runs already in --work

Two sets: the default synthetic run (`pcbseg-train`, 10 epochs) and the real resistor crops
(`experiment=resistor`), each once with `trainer.precision=32-true` and once with `bf16-mixed`.
bfloat16 becomes the CPU default only where it keeps the holdout mIoU within 0.01 of float32.
The holdout is scored in float32 in every run, so only training differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section

from pcbseg.hardware import cpu_has_bf16

RESISTOR = Path(__file__).resolve().parents[3] / "shared" / "data" / "pcb-resistor"
SETS = {"synthetic": [], "resistor": ["experiment=resistor"]}
PRECISIONS = ("32-true", "bf16-mixed")


def run(work: Path, name: str, precision: str, reuse: bool) -> dict:
    out = work / "runs" / f"{name}-{precision}"
    if not (reuse and (out / "summary.json").is_file()):
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        cmd = [sys.executable, "-m", "pcbseg.cli.train", *SETS[name], "~callbacks.progress_bar",
               f"hydra.run.dir={out}", f"trainer.precision={precision}"]
        subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True)
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="folder for the data and the runs")
    ap.add_argument("--reuse", action="store_true", help="report finished runs in --work instead of training again")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.work / "data" / "pcb-resistor").exists():
        subprocess.run([sys.executable, "-m", "pcbseg.cli.import_", "masks", str(RESISTOR / "image"), str(RESISTOR / "GT"),
                        "--out", str(args.work / "data" / "pcb-resistor"), "--mode", "binary", "--foreground", "dark",
                        "--classes", "background,resistor"], check=True, capture_output=True)
    rows, verdict = [], []
    for name in SETS:
        got = {p: run(args.work, name, p, args.reuse) for p in PRECISIONS}
        a, b = got["32-true"]["val"], got["bf16-mixed"]["val"]
        delta = b["mIoU"] - a["mIoU"]
        verdict.append(abs(delta) <= 0.01)
        times = [got[p]["wall_time_s"] for p in PRECISIONS]
        rows.append(f"| {name} | {a['mIoU']:.3f} | {b['mIoU']:.3f} | {delta:+.3f} | {a['pixel_error_rate']:.4f} | "
                    f"{b['pixel_error_rate']:.4f} | {times[0]:.0f} | {times[1]:.0f} |")
    body = (
        f"Native bfloat16 on this CPU: {'yes' if cpu_has_bf16() else 'no'}. One seed per cell (42); wall time is the whole "
        "run (training, checkpoints, holdout scoring in float32), on a machine that was not always quiet, so read the "
        "times as rough; the per-step speed is in `train_throughput`.\n\n"
        "| set | mIoU float32 | mIoU bf16-mixed | difference | pixel error float32 | pixel error bf16 | s float32 | s bf16 |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        + ("Every set stays within 0.01 mIoU: `trainer=cpu` trains in bf16-mixed where the CPU has native bfloat16."
           if all(verdict) else "Not every set stays within 0.01 mIoU: `trainer=cpu` keeps float32.")
    )
    write_section("cpu_bf16", "bfloat16 against float32 for training on CPU", body)


if __name__ == "__main__":
    main()
