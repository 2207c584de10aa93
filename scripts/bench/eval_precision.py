"""Scoring in bfloat16 against float32 on CPU: the same checkpoints, the same holdouts, both precisions.

    python scripts/bench/eval_precision.py --ckpt NAME=PATH [--ckpt NAME=PATH ...]

Each checkpoint is scored on its own dataset's val split by ``pcbseg-eval`` (the model's tiles,
whole images at full resolution), once with ``precision=32`` and once with ``precision=bf16``.
Checkpoints that share a NAME (``photos=fold1.ckpt photos=fold2.ckpt``) are summed into one row
through their confusion matrices (leave-one-board-out folds). bfloat16 becomes the default for
``pcbseg-eval``, ``pcbseg-predict`` and the training summary only if every row stays within 0.01 mIoU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section


def score(ckpt: Path, precision: str, out: Path) -> tuple[np.ndarray, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    subprocess.run(["pcbseg-eval", f"ckpt_path={ckpt}", f"precision={precision}", f"hydra.run.dir={out}",
                    "num_show=0", "top_losses=0"], check=True, env=env, capture_output=True)
    seconds = time.perf_counter() - t0
    metrics = json.loads(next(out.rglob("metrics.json")).read_text())
    return np.asarray(metrics["confusion_matrix"], dtype=np.int64), seconds


def miou(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ckpt", action="append", required=True, help="NAME=PATH; repeat a NAME to sum folds")
    args = ap.parse_args()
    groups: dict[str, list[Path]] = {}
    for item in args.ckpt:
        name, path = item.split("=", 1)
        groups.setdefault(name, []).append(Path(path))
    rows = []
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, ckpts in groups.items():
            result = {}
            for precision in ("32", "bf16"):
                cms, seconds = [], 0.0
                for i, ckpt in enumerate(ckpts):
                    cm, s = score(ckpt, precision, Path(tmp) / f"{name}-{i}-{precision}")
                    cms.append(cm)
                    seconds += s
                cm = sum(cms)
                result[precision] = (miou(cm), 1 - np.trace(cm) / cm.sum(), seconds)
            (m32, e32, s32), (m16, e16, s16) = result["32"], result["bf16"]
            worst = max(worst, abs(m16 - m32))
            rows.append(f"| {name} | {len(ckpts)} | {m32:.4f} | {m16:.4f} | {m16 - m32:+.4f} | {e32:.4f} | {e16:.4f} | "
                        f"{s32:.0f} | {s16:.0f} |")
    verdict = ("every set stays within 0.01 mIoU" if worst <= 0.01 else
               f"a set moves by {worst:.4f} mIoU, more than 0.01: float32 stays the default")
    body = (
        "`pcbseg-eval` on each checkpoint's own val split (whole images, the model's tiles), float32 against "
        "`precision=bf16` (bfloat16 autocast; logits blended in float32). Seconds are the whole `pcbseg-eval` "
        "command, process start included.\n\n"
        "| set | checkpoints | mIoU float32 | mIoU bf16 | difference | pixel error float32 | pixel error bf16 | "
        "s float32 | s bf16 |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
        + f"\n\nLargest difference: {worst:.4f} mIoU; {verdict}."
    )
    write_section("eval_precision", "Scoring in bfloat16 against float32 (CPU)", body)


if __name__ == "__main__":
    main()
