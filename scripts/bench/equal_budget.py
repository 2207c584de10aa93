"""Learning at equal budget: pcbseg-train's default recipe against the plain smp script, same minutes.

For each real set and seed, both train for the same minutes of wall time on the same train
split (2 torch threads each), then the final model (no checkpoint picked on the holdout) is scored
on the holdout at full resolution by pcbseg's metric code:

* ``resistor``: the imported pcb-resistor set (see conf/experiment/resistor.yaml), its fixed val split;
  pcbseg runs ``experiment=resistor``, the plain script 128 px crops, batch 16 like it.
* ``photos``: the registered board photos (a dataset from ``scripts/real_photos.py``, at 15 px/mm),
  leave one board out: each board's photos are scored by models trained on the other boards'
  (cut into 384 px tiles); the confusion matrices of the held-out boards are summed per seed.
  pcbseg runs ``experiment=real_photos``, the plain script 256 px crops, batch 8 like it.

pcbseg runs in its time-budget mode (``trainer.max_time``; the LR schedule spans the steps that fit)
with no validation during training, so both sides spend the minutes on training alone.

    python scripts/bench/equal_budget.py --work /tmp/eb --resistor data/pcb-resistor \
        --photos /work/rp/photos-15ppm --seeds 0,1,2 --minutes-resistor 2 --minutes-photos 1 [--parallel 1]
    python scripts/bench/equal_budget.py --work /tmp/eb --report-only    # the table from finished jobs
    python scripts/bench/equal_budget.py --work /tmp/eb --resistor data/pcb-resistor --variants-only \
        --variants "enc1=model.encoder_lr_div=1;nofreeze=model.freeze_epochs=0"   # recipe ablations, same budget
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _report import write_section  # noqa: E402


def _clock(minutes: float) -> str:
    s = round(minutes * 60)
    return f"00:00:{s // 60:02d}:{s % 60:02d}"


def jobs(args: argparse.Namespace) -> list[dict]:
    out = []
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.resistor:
        for seed in seeds:
            out.append({"set": "resistor", "fold": "val", "seed": seed, "root": str(args.resistor),
                        "minutes": args.minutes_resistor, "extra": ["experiment=resistor"], "crop": 128, "batch": 16})
    if args.photos:
        from pcbseg.data.splits import read_splits
        from real_photos import fold

        boards = sorted({r.group for r in read_splits(args.photos / "splits.csv")})
        for board in boards:
            root = args.work / "folds" / board
            if not (root / "splits.csv").exists():
                fold(args.photos, root, board)
            for seed in seeds:
                # experiment=real_photos is pcbseg's recipe for these photos, as experiment=resistor is for the resistors
                out.append({"set": "photos", "fold": board, "seed": seed, "root": str(root),
                            "minutes": args.minutes_photos, "extra": ["experiment=real_photos"], "crop": 256, "batch": 8})
    methods = [("pcbseg", []), ("plain", [])] if not args.variants_only else []
    methods += [(f"pcbseg+{name}", overrides) for name, overrides in variants(args.variants).items()]
    return [dict(j, method=m, overrides=o) for j in out for m, o in methods]


def variants(spec: str | None) -> dict[str, list[str]]:
    """``"enc1=model.encoder_lr_div=1;nofreeze=model.freeze_epochs=0,model.lr=1e-3"`` -> {name: overrides}."""
    out = {}
    for item in filter(None, (spec or "").split(";")):
        name, _, overrides = item.partition("=")
        out[name.strip()] = [o.strip() for o in overrides.split(",") if o.strip()]
    return out


def result_path(work: Path, job: dict) -> Path:
    return work / "results" / job["set"] / job["fold"] / f"{job['method']}-s{job['seed']}.json"


def run_job(work: Path, job: dict) -> None:
    dest = result_path(work, job)
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    log = dest.with_suffix(".log").open("w")
    if job["method"] == "plain":
        cmd = [sys.executable, str(HERE / "plain_smp.py"), "--root", job["root"], "--minutes", str(job["minutes"]),
               "--seed", str(job["seed"]), "--out", str(dest), "--crop", str(job["crop"]), "--batch", str(job["batch"])]
        subprocess.run(cmd, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
        return
    run_dir = dest.with_suffix("")
    cmd = [sys.executable, "-m", "pcbseg.cli.train", *job["extra"], *job["overrides"], "data=folder", f"data.root={job['root']}",
           "data.num_workers=0", f"seed={job['seed']}", "threads=2", "trainer.max_epochs=-1",
           f"+trainer.max_time={_clock(job['minutes'])}", "+trainer.limit_val_batches=0",
           "~callbacks.model_checkpoint", "+trainer.enable_checkpointing=false", "~callbacks.early_stopping",
           "~callbacks.progress_bar",
           f"hydra.run.dir={run_dir}"]
    subprocess.run(cmd, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
    s = json.loads((run_dir / "summary.json").read_text())
    v = s["val"]
    dest.write_text(json.dumps({
        "mIoU": v["mIoU"], "pixel_error_rate": v["pixel_error_rate"],
        "majority_pixel_error_rate": v["majority_pixel_error_rate"], "per_class_iou": v["per_class_iou"],
        "confusion_matrix": v["confusion_matrix"], "steps": s["global_steps"], "train_s": s["wall_time_s"]}, indent=1))


def _iou(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def per_seed(work: Path, dataset: str, method: str) -> dict[int, dict]:
    """Per seed: mIoU etc. from the confusion matrices summed over the set's folds."""
    by_seed: dict[int, list[dict]] = {}
    for f in sorted((work / "results" / dataset).glob(f"*/{method}-s*.json")):
        by_seed.setdefault(int(f.stem.split("-s")[-1]), []).append(json.loads(f.read_text()))
    out = {}
    for seed, rs in by_seed.items():
        cm = sum(np.asarray(r["confusion_matrix"], dtype=np.int64) for r in rs)
        iou = _iou(cm)
        total = cm.sum()
        out[seed] = {"mIoU": float(np.nanmean(iou)), "iou": iou, "error": 1 - np.trace(cm) / total,
                     "majority": 1 - cm.sum(1).max() / total, "folds": len(rs),
                     "steps": statistics.mean(r["steps"] for r in rs)}
    return out


def _ms(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def report(args: argparse.Namespace, names: dict[str, list[str]]) -> None:
    lines = []
    for dataset, classes in names.items():
        labels = {"pcbseg": "pcbseg-train default (time budget)", "plain": "plain smp script"}
        for name, overrides in variants(args.variants).items():
            labels[f"pcbseg+{name}"] = "pcbseg-train " + " ".join(f"`{o}`" for o in overrides)
        rows = {m: per_seed(args.work, dataset, m) for m in labels}
        if not rows["pcbseg"] or not rows["plain"]:
            continue
        minutes = args.minutes_resistor if dataset == "resistor" else args.minutes_photos
        folds = next(iter(rows["pcbseg"].values()))["folds"]
        lines.append(f"\n**{dataset}** ({minutes:g} min of training per run, "
                     + (f"{folds} leave-one-board-out folds summed per seed" if dataset == "photos" else "its val split")
                     + f", seeds {sorted(rows['pcbseg'])}):\n")
        lines.append("| recipe | mIoU (mean ± sd) | pixel error | majority-class error | "
                     + " | ".join(classes) + " | optimiser steps per run |")
        lines.append("|---|---|---|---|" + "---|" * len(classes) + "---|")
        for m, label in labels.items():
            r = rows[m]
            if not r:
                continue
            seeds = sorted(r)
            ious = np.nanmean(np.stack([r[s]["iou"] for s in seeds]), 0)
            lines.append(f"| {label} | {_ms([r[s]['mIoU'] for s in seeds])} | "
                         f"{statistics.mean(r[s]['error'] for s in seeds):.4f} | "
                         f"{statistics.mean(r[s]['majority'] for s in seeds):.4f} | "
                         + " | ".join(f"{v:.3f}" for v in ious)
                         + f" | {statistics.mean(r[s]['steps'] for s in seeds):.0f} |")
        diff = statistics.mean(rows["pcbseg"][s]["mIoU"] for s in rows["pcbseg"]) - statistics.mean(
            rows["plain"][s]["mIoU"] for s in rows["plain"])
        lines.append(f"\nDifference in mean mIoU, pcbseg minus plain: **{diff:+.3f}** (target: at least +0.02).")
    body = (
        "Both recipes train for the same wall-clock minutes with 2 torch threads on the same train split, and their "
        "final models are scored on the holdout at full resolution by the same metric code (`evaluate_images`). "
        "pcbseg: `pcbseg-train` with the shipped recipe for the set (`experiment=resistor`: light augmentation, "
        "128 px crops; `experiment=real_photos`: heavy augmentation, scale jitter, 256 px crops) and its defaults "
        "(bf16-mixed where the CPU has it, frozen encoder first, one-cycle schedule, CE + Dice) in the time-budget "
        "mode `trainer.max_time`, no validation during training and no checkpoint picked on the holdout. "
        "Plain: `scripts/bench/plain_smp.py` "
        "(smp Unet on the same offline ImageNet lite0 encoder, Dice + CE, or Dice + BCE for two classes, Adam 1e-3, "
        "flips and crops, float32). Jobs ran " + (f"{args.parallel} at a time" if args.parallel > 1 else "one at a time")
        + f" on {args.machine}.\n" + "\n".join(lines)
    )
    write_section("equal-budget", "Learning at equal budget: pcbseg default against a plain smp script", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--resistor", type=Path, default=None)
    ap.add_argument("--photos", type=Path, default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--minutes-resistor", type=float, default=2.0)
    ap.add_argument("--minutes-photos", type=float, default=1.0)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--machine", default="this machine (2 cores)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--variants", default=None,
                    help="pcbseg variants to run beside the default: 'name=override,override;name2=...'")
    ap.add_argument("--variants-only", action="store_true", help="run only the variants (default and plain done)")
    args = ap.parse_args()
    if not args.report_only:
        todo = jobs(args)
        t0 = time.time()
        with ThreadPoolExecutor(args.parallel) as pool:
            for job, _ in zip(todo, pool.map(lambda j: run_job(args.work, j), todo), strict=True):
                print(f"done {job['set']}/{job['fold']}/{job['method']}-s{job['seed']} at {time.time() - t0:.0f} s",
                      flush=True)
    from pcbseg.taxonomy import get_taxonomy

    names = {"resistor": ["background", "resistor"], "photos": list(get_taxonomy("default").names)}
    report(args, names)


if __name__ == "__main__":
    main()
