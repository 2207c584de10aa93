"""Short runs: what a user's first `pcbseg-train data=folder ... trainer.max_epochs=3` scores, and what the
training loop's own validation said about the same model.

Each job is the bare default recipe on a folder dataset for a few epochs, validated once, at the end, so the
best checkpoint is the final model. Two scores per run: ``holdout``, what ``summary.json`` holds (the
predictor, as ``pcbseg-eval`` and ``pcbseg-predict`` run it), and ``loop``, the last ``val/mIoU`` the training
loop logged (its val batches). A model that learned something the predictor never shows it (a black margin
around small images, say) scores high in the loop and low on the holdout.

    python scripts/bench/short_runs.py --work /tmp/sr --root data/pcb-resistor --epochs 3 --seeds 0,1,2 \
        [--label after] [--variants "fp10=model.freeze_pct=0.1"] [--report-only]

``--label`` names the code the jobs ran (run the script from an installed copy of older code with
``PYTHONPATH`` to compare); the report has one row per label and recipe found in ``--work``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import write_section  # noqa: E402
from equal_budget import variants  # noqa: E402


def run_job(work: Path, root: Path, epochs: int, label: str, name: str, overrides: list[str], seed: int) -> None:
    dest = work / "results" / label / f"{name}-s{seed}.json"
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    run_dir = dest.with_suffix("")
    cmd = [sys.executable, "-m", "pcbseg.cli.train", "data=folder", f"data.root={root}", f"trainer.max_epochs={epochs}",
           f"trainer.check_val_every_n_epoch={epochs}", f"seed={seed}", "threads=2", "~callbacks.progress_bar",
           *overrides, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    with dest.with_suffix(".log").open("w") as log:
        done = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:  # a bad override or dataset: say where pcbseg-train said why, keep the finished jobs
        raise SystemExit(f"{label}/{name}-s{seed}: pcbseg-train failed (exit {done.returncode}) with "
                         f"{' '.join(overrides) or 'the defaults'}; its output is in {dest.with_suffix('.log')}")
    s = json.loads((run_dir / "summary.json").read_text())
    logged = [r for r in csv.DictReader((run_dir / "metrics.csv").open()) if r.get("val/mIoU")]
    dest.write_text(json.dumps({
        "holdout": s["val"]["mIoU"], "loop": float(logged[-1]["val/mIoU"]) if logged else None,
        "pixel_error_rate": s["val"]["pixel_error_rate"], "majority_pixel_error_rate": s["val"]["majority_pixel_error_rate"],
        "per_class_iou": s["val"]["per_class_iou"], "steps": s["global_steps"], "wall_s": s["wall_time_s"],
        "overrides": overrides}, indent=1))


def _ms(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def report(args: argparse.Namespace) -> None:
    groups: dict[tuple[str, str], list[dict]] = {}
    for f in sorted((args.work / "results").glob("*/*-s*.json")):
        groups.setdefault((f.parent.name, f.stem.rsplit("-s", 1)[0]), []).append(json.loads(f.read_text()))
    if not groups:  # an empty table would replace the section that is there
        raise SystemExit(f"{args.work / 'results'}: no finished runs; docs/benchmarks.md left as it is")
    lines = ["| code | recipe | seeds | holdout mIoU (mean ± sd) | loop val/mIoU (mean ± sd) | pixel error | "
             "majority-class error | optimiser steps | wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for (label, name), rs in groups.items():
        over = " ".join(f"`{o}`" for o in rs[0]["overrides"]) or "defaults"
        loop = [r["loop"] for r in rs if r["loop"] is not None]
        lines.append(f"| {label} | {name}: {over} | {len(rs)} | {_ms([r['holdout'] for r in rs])} | "
                     f"{_ms(loop) if loop else '–'} | {statistics.mean(r['pixel_error_rate'] for r in rs):.4f} | "
                     f"{statistics.mean(r['majority_pixel_error_rate'] for r in rs):.4f} | "
                     f"{statistics.mean(r['steps'] for r in rs):.0f} | {statistics.mean(r['wall_s'] for r in rs):.0f} |")
    body = (f"`pcbseg-train data=folder data.root={args.root} trainer.max_epochs={args.epochs}` (validated once, at the "
            "end, so the final model is the best checkpoint), one job at a time, 2 torch threads. holdout: the mIoU in "
            "summary.json, scored by the predictor as pcbseg-eval scores it; loop: the val/mIoU the training loop "
            "logged for the same model.\n\n" + "\n".join(lines))
    write_section("short-runs", f"Short runs: the default recipe for {args.epochs} epochs", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--label", default="this code")
    ap.add_argument("--variants", default=None, help="recipes beside the default: 'name=override,override;...'")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    if not args.report_only:
        if not (args.root / "splits.csv").exists() and not (args.root / "images").is_dir():
            raise SystemExit(f"{args.root}: not a dataset folder (no images/ or splits.csv)")
        recipes = {"default": [], **variants(args.variants)}
        for seed in (int(s) for s in args.seeds.split(",")):
            for name, overrides in recipes.items():
                run_job(args.work, args.root.resolve(), args.epochs, args.label, name, overrides, seed)
                print(f"done {args.label}/{name}-s{seed}", flush=True)
    report(args)


if __name__ == "__main__":
    main()
