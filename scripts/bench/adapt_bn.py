"""BatchNorm statistics from each photo (``adapt_bn``) against the training set's, on the registered board photos.

    python scripts/bench/adapt_bn.py --photos data/bench-photos --work /tmp/abn --shares 0,0.5,1 \
        [--zero-shot RUN ...] [--folds S2R_WORK ... --recipes real-only,sim+real] [--tta hflip,vflip] [--report-only]

A model trained on synthetic boards (or on other boards' photos) meets a photo whose colours, contrast and
blur its BatchNorm layers never saw. ``pcbseg-predict adapt_bn=S`` measures every BatchNorm layer's mean and
variance on the photo itself, in one extra pass, and predicts with S x those + (1 - S) x the training set's:
no label and no other photo is used. This script scores already-trained models both ways, retraining nothing:

- ``--zero-shot RUN``: a run of ``experiment=sim_to_real`` (``scripts/bench/zero_shot.py`` or
  ``scripts/sim_to_real.py`` write them), its final model scored on every photo, none of which it saw;
- ``--folds WORK ... --recipes ...``: the leave-one-board-out runs of ``scripts/sim_to_real.py`` in each
  ``WORK`` (``WORK/runs/BOARD/RECIPE``; one folder per seed), each scored on its held-out board's photos
  (``WORK/folds/BOARD/photos``).

Photos are predicted at 15 px/mm as ``pcbseg-eval px_per_mm=15`` does. Per-class IoU from the confusion matrix
summed over the photos; pixel error beside the error of predicting background everywhere; trace IoU on the photos
of bare boards. Scores are kept in ``WORK/scores`` and reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _report import write_section  # noqa: E402

from pcbseg.api import CheckpointError  # noqa: E402
from pcbseg.data.layout import DatasetLayout, read_mask  # noqa: E402
from pcbseg.data.splits import read_splits  # noqa: E402
from sim_to_real import RECIPES, TAX, bare_photos, confusion, per_class, score  # noqa: E402

TRACE, BACKGROUND = TAX.names.index("trace"), TAX.names.index("background")


def final_ckpt(run: Path) -> Path:
    ckpt = run / "checkpoints" / "final.ckpt"
    if not ckpt.is_file():
        raise SystemExit(f"{run}: no checkpoints/final.ckpt (a finished pcbseg-train run is needed)")
    return ckpt


def scored(label: str, share: float, models: list[tuple[Path, Path, bool]], args: argparse.Namespace) -> dict:
    """Summed confusion matrices of ``models`` ((checkpoint, photos, every photo)) at one share, cached."""
    dest = args.work / "scores" / label.replace("/", "_") / f"share{share:g}{'-tta' if args.tta else ''}.json"
    if dest.is_file():
        return json.loads(dest.read_text())
    bare = bare_photos()
    n = TAX.num_classes
    cm, bare_cm, photos, start = np.zeros((n, n), np.int64), np.zeros((n, n), np.int64), 0, time.perf_counter()
    for ckpt, root, every in models:
        try:
            _, _, masks = score(ckpt, root, tuple(args.tta), every_image=every, adapt_bn=share)
        except CheckpointError as e:
            raise SystemExit(str(e)) from e  # it names the file
        for image_id, pred in masks.items():
            c = confusion(pred, read_mask(DatasetLayout(root).mask_path(image_id)))
            cm += c
            bare_cm += c if image_id in bare else 0
            photos += 1
    out = {"confusion_matrix": cm.tolist(), "bare_confusion_matrix": bare_cm.tolist(), "photos": photos,
           "seconds": time.perf_counter() - start, "models": [str(m[0]) for m in models]}
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out))
    return out


def model_sets(args: argparse.Namespace) -> dict[str, list[tuple[Path, Path, bool]]]:
    sets: dict[str, list[tuple[Path, Path, bool]]] = {}
    for run in args.zero_shot:
        sets[f"zero-shot ({run.name})"] = [(final_ckpt(run), args.photos, True)]
    for work in args.folds:
        boards = sorted(p.name for p in (work / "folds").iterdir() if (p / "photos" / "splits.csv").is_file()) \
            if (work / "folds").is_dir() else []
        if not boards:
            raise SystemExit(f"{work}: no folds/BOARD/photos (a work folder of scripts/sim_to_real.py is needed)")
        for recipe in args.recipes:
            sets[f"{recipe} ({work.name})"] = [(final_ckpt(work / "runs" / b / recipe), work / "folds" / b / "photos",
                                                False) for b in boards]
    return sets


def row(label: str, share: float, r: dict) -> str:
    cm, bare = np.array(r["confusion_matrix"]), np.array(r["bare_confusion_matrix"])
    ious = per_class(cm)
    miou = float(np.mean([v for v in ious if v is not None]))
    err, majority = 1 - np.trace(cm) / cm.sum(), 1 - cm[BACKGROUND].sum() / cm.sum()
    bt = per_class(bare)[TRACE] if bare.sum() else None
    return (f"| {label} | {share:g} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in ious)
            + f" | **{miou:.3f}** | {err:.3f} ({majority:.3f}) | {'–' if bt is None else f'{bt:.3f}'} | "
            f"{r['seconds'] / max(1, r['photos']):.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, required=True, help="registered photos at 15 px/mm (scripts/real_photos.py)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--shares", default="0,0.5,1", help="adapt_bn values; 0 is the model's own statistics")
    ap.add_argument("--zero-shot", type=Path, nargs="*", default=[], metavar="RUN")
    ap.add_argument("--folds", type=Path, nargs="*", default=[], metavar="WORK",
                    help="work folders of scripts/sim_to_real.py (one per seed)")
    ap.add_argument("--recipes", default="real-only", help=f"fold recipes to score, from {', '.join(RECIPES[1:])}")
    ap.add_argument("--tta", default="", help="test-time transforms, e.g. hflip,vflip")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    try:
        args.shares = [float(s) for s in args.shares.split(",")]
    except ValueError:
        raise SystemExit(f"--shares {args.shares!r}: comma-separated numbers from 0 to 1") from None
    if any(not 0 <= s <= 1 for s in args.shares):
        raise SystemExit(f"--shares {args.shares}: each must be from 0 to 1")
    args.recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in args.recipes if r not in RECIPES[1:]]
    if unknown:
        raise SystemExit(f"--recipes: {unknown} unknown; fold recipes are {', '.join(RECIPES[1:])}")
    args.tta = [t for t in args.tta.split(",") if t]
    if not (args.photos / "splits.csv").is_file() or not read_splits(args.photos / "splits.csv"):
        raise SystemExit(f"{args.photos}: no registered photo set (splits.csv missing or empty)")
    if not args.zero_shot and not args.folds:
        raise SystemExit("nothing to score: give --zero-shot RUN and/or --folds WORK")
    sets = model_sets(args)
    rows = []
    for label, models in sets.items():
        for share in args.shares:
            dest = args.work / "scores" / label.replace("/", "_") / f"share{share:g}{'-tta' if args.tta else ''}.json"
            if args.report_only and not dest.is_file():
                continue
            rows.append(row(label, share, scored(label, share, models, args)))
            print(rows[-1], flush=True)
    if not rows:
        raise SystemExit(f"{args.work}: no scores yet; docs/benchmarks.md left as it is")
    head = ("| model | adapt_bn | " + " | ".join(TAX.names)
            + " | mIoU | pixel error (all background) | trace, bare boards | s per photo |")
    body = ("Models already trained, scored on the registered photos at 15 px/mm with each photo's own BatchNorm "
            "statistics blended in (`pcbseg-predict adapt_bn=S`; 0 = the model's own). Zero-shot models on every "
            "photo; fold models (leave one board out) on their held-out board's photos"
            + (f"; test-time {'+'.join(args.tta)}" if args.tta else "") + ".\n\n" + head + "\n"
            + "|---|---|" + "---|" * len(TAX.names) + "---|---|---|---|\n" + "\n".join(rows))
    write_section("adapt-bn", "BatchNorm statistics from each photo (adapt_bn)", body)


if __name__ == "__main__":
    main()
