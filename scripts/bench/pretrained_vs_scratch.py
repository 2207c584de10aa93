"""Val mIoU within the default CPU budget: the pretrained encoder against the same encoder from scratch.

Runs the default ``pcbseg-train`` twice on the default synthetic set, identical but for
``model.weights`` (``imagenet`` vs ``null``; no frozen phase for the scratch encoder, which has
nothing worth preserving), and records each run's holdout scores and wall time.

    python scripts/bench/pretrained_vs_scratch.py [extra pcbseg-train overrides...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section


def run(label: str, overrides: list[str], workdir: Path) -> dict:
    out = workdir / label
    cmd = [sys.executable, "-m", "pcbseg.cli.train", f"hydra.run.dir={out}", "~callbacks.progress_bar", *overrides]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=workdir, check=True)
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    extra = sys.argv[1:]
    workdir = Path(tempfile.mkdtemp())
    runs = {
        "pretrained (ImageNet, offline lite0)": run("pretrained", ["model.weights=imagenet", *extra], workdir),
        "from scratch": run("scratch", ["model.weights=null", "model.freeze_epochs=0", *extra], workdir),
    }
    classes = list(next(iter(runs.values()))["val"]["per_class_iou"])
    rows = ["| encoder | val mIoU | pixel error rate | " + " | ".join(classes) + " | epochs | wall time (s) |",
            "|---|---|---|" + "---|" * len(classes) + "---|---|"]
    for label, s in runs.items():
        per = " | ".join(f"{s['val']['per_class_iou'][c]:.3f}" for c in classes)
        rows.append(f"| {label} | **{s['val']['mIoU']:.3f}** | {s['val']['pixel_error_rate']:.4f} | {per} | "
                    f"{s['epochs']} | {s['wall_time_s']:.0f} |")
    body = ("Default `pcbseg-train` (synthetic boards, Unet + EfficientNet-Lite0, CPU); the wall time includes "
            "generating the synthetic set in the first run only. Per-class columns are holdout IoU.\n\n" + "\n".join(rows))
    write_section("pretrained-vs-scratch", "Learning: pretrained encoder against the same encoder from scratch", body)


if __name__ == "__main__":
    main()
