"""Fine-tuning the zero-shot model on sim + real photos, leave one board out: how gently should it start?

    python scripts/bench/finetune_photos.py --photos data/bench-photos --work /tmp/s2r \
        --variants "default=;lr3e-4=model.lr=3e-4" [--minutes-sim 30] [--minutes-fold 3] [--seeds 0] [--report-only]

docs/sim_to_real.md found that the zero-shot model, fine-tuned for 3 minutes per fold on sim + real photos
(``experiment=sim_plus_real init_from=...``), scored below the zero-shot model itself: the fold run starts its
one-cycle schedule at the full learning rate, as if from ImageNet. This script measures fine-tuning variants
against the zero-shot model and the real-only recipe on the same folds, one job at a time.

``--work`` uses scripts/sim_to_real.py's layout, so a work folder of that script is reused as it is: the
simulated set ``WORK/data/sim``, the folds ``WORK/folds/BOARD/{photos,sim}`` and the zero-shot model
``WORK/runs/zero-shot`` are built or trained only where missing (the zero-shot model with seed 0 and
``--minutes-sim``). Per seed and held-out board: ``experiment=real_photos`` on the fold's photos, and per
``--variants`` entry ``experiment=sim_plus_real init_from=<zero-shot>`` plus its overrides, each for
``--minutes-fold`` without validation; the final models are scored on the held-out board's photos at
15 px/mm. Per-class IoU from the confusion matrices summed over the six held-out boards; trace also on the
photos of bare boards.

The variant ``lr3e-4=model.lr=3e-4`` is ``experiment=finetune_photos``, the recipe these runs chose.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _report import write_section  # noqa: E402

from pcbseg.api import CheckpointError  # noqa: E402
from pcbseg.data.layout import read_mask  # noqa: E402
from pcbseg.data.splits import read_splits  # noqa: E402
from real_photos import fold  # noqa: E402
from sim_to_real import TAX, bare_photos, build_sim, confusion, merged_fold, per_class, score, train  # noqa: E402


def parse_variants(text: str) -> dict[str, list[str]]:
    out = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        if "=" not in part:
            raise SystemExit(f"--variants: {part!r} is not name=override[,override...] (or name= for none)")
        name, ovs = part.split("=", 1)
        out[name.strip()] = [o for o in ovs.split(",") if o]
    return out


def scored(ckpt: Path, photos: Path, dest: Path, bare: set[str]) -> dict:
    """The model's confusion matrices on the fold's held-out photos, written to ``dest`` once."""
    if dest.is_file():
        return json.loads(dest.read_text())
    cm, _, masks = score(ckpt, photos)
    bare_cm = sum((confusion(m, read_mask(photos / "masks" / f"{i}.png")) for i, m in masks.items() if i in bare),
                  np.zeros_like(cm))
    out = {"confusion_matrix": cm.tolist(), "bare_confusion_matrix": bare_cm.tolist(),
           "steps": json.loads((ckpt.parent.parent / "summary.json").read_text())["global_steps"]}
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out))
    return out


def run_all(args: argparse.Namespace, variants: dict[str, list[str]], seeds: list[int]) -> None:
    work = args.work
    sim = work / "data" / "sim"
    if not (sim / "splits.csv").is_file():
        build_sim(work / "data", args.boards, args.renders, None, work)
    boards = sorted({r.group for r in read_splits(args.photos / "splits.csv")})
    for board in boards:
        photos = work / "folds" / board / "photos"
        if not (photos / "splits.csv").is_file():
            fold(args.photos, photos, board)
        merged_fold(sim, photos, work / "folds" / board / "sim", work)
    zero = train("sim_to_real", sim, work / "runs" / "zero-shot", args.minutes_sim, 0, work)
    bare = bare_photos()
    out = work / "finetune"
    out.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        # board by board, every recipe in turn: a machine that drifts in speed shifts all recipes alike
        for board in boards:
            photos = work / "folds" / board / "photos"
            scored(zero, photos, out / "scores" / board / "zero-shot.json", bare)
            runs = out / "runs" / board
            ckpt = train("real_photos", photos, runs / f"real-only-s{seed}", args.minutes_fold, seed, work)
            scored(ckpt, photos, out / "scores" / board / f"real-only-s{seed}.json", bare)
            for name, ovs in variants.items():
                ckpt = train("sim_plus_real", work / "folds" / board / "sim", runs / f"ft-{name}-s{seed}",
                             args.minutes_fold, seed, work, [f"init_from={zero}", *ovs])
                scored(ckpt, photos, out / "scores" / board / f"ft-{name}-s{seed}.json", bare)
            print(f"done seed {seed} {board}", flush=True)
    known = out / "variants.json"  # a later run with other variants adds to the report, never drops earlier rows
    known.write_text(json.dumps({**(json.loads(known.read_text()) if known.is_file() else {}), **variants}))


def report(args: argparse.Namespace) -> None:
    out = args.work / "finetune"
    if not (out / "variants.json").is_file():
        raise SystemExit(f"{out}: no finished run of this script; docs/benchmarks.md left as it is")
    variants = json.loads((out / "variants.json").read_text())
    boards = sorted(p.name for p in (out / "scores").iterdir() if p.is_dir())
    trace = TAX.names.index("trace")
    recipes = {"zero-shot (no photo seen)": "zero-shot", "real-only (`experiment=real_photos`)": "real-only",
               **{f"zero-shot + sim+real, {name}" + (" (" + ", ".join(f"`{o}`" for o in ovs) + ")" if ovs else ""):
                  f"ft-{name}" for name, ovs in variants.items()}}
    head = ("| recipe | seeds | " + " | ".join(TAX.names)
            + " | mIoU | mIoU per seed | pixel error | trace, bare boards | steps per fold |")
    rows = [head, "|---|---|" + "---|" * len(TAX.names) + "---|---|---|---|---|"]
    per_board = ["| recipe | " + " | ".join(boards) + " |", "|---|" + "---|" * len(boards)]
    for label, stem in recipes.items():
        by_seed: dict[str, list[dict]] = {}
        for board in boards:
            for f in sorted((out / "scores" / board).glob(f"{stem}*.json")):
                if f.stem == stem or re.fullmatch(r"-s\d+", f.stem[len(stem):]):
                    by_seed.setdefault(f.stem[len(stem):] or "-", []).append((board, json.loads(f.read_text())))
        full = {s: rs for s, rs in by_seed.items() if len(rs) == len(boards)}
        if not full:
            continue
        cm = sum(np.array(r["confusion_matrix"]) for rs in full.values() for _, r in rs)
        bare_cm = sum(np.array(r["bare_confusion_matrix"]) for rs in full.values() for _, r in rs)
        ious = per_class(cm)
        miou = float(np.nanmean([v for v in ious if v is not None]))
        seed_mious = [float(np.nanmean([v for v in per_class(sum(np.array(r["confusion_matrix"]) for _, r in rs))
                                        if v is not None])) for rs in full.values()]
        bt = per_class(bare_cm)[trace]
        steps = statistics.mean(r["steps"] for rs in full.values() for _, r in rs)
        rows.append(f"| {label} | {len(full)} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in ious)
                    + f" | **{miou:.3f}** | {', '.join(f'{m:.3f}' for m in seed_mious)} | {1 - np.trace(cm) / cm.sum():.3f}"
                    f" | {'–' if bt is None else f'{bt:.3f}'} | {steps:.0f} |")
        board_mious = []
        for board in boards:
            bcm = sum(np.array(r["confusion_matrix"]) for rs in full.values() for b, r in rs if b == board)
            board_mious.append(float(np.nanmean([v for v in per_class(bcm) if v is not None])))
        per_board.append(f"| {label} | " + " | ".join(f"{m:.3f}" for m in board_mious) + " |")
    majority = 1 - max(cm.sum(1)) / cm.sum()
    body = ("Leave one board out over the registered photos at 15 px/mm; every fold run trains for the same minutes "
            "without validation and its final model is scored. The zero-shot model is one `experiment=sim_to_real` "
            f"run (seed 0), shared by every fine-tuned row. Majority-class pixel error {majority:.3f}.\n\n"
            + "\n".join(rows) + "\n\nmIoU per held-out board (seeds summed):\n\n" + "\n".join(per_board))
    write_section("finetune-photos", "Fine-tuning the zero-shot model on sim + real photos", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, required=True, help="registered photos at 15 px/mm (scripts/real_photos.py)")
    ap.add_argument("--work", type=Path, required=True, help="a scripts/sim_to_real.py work folder (made if new)")
    ap.add_argument("--variants", default="default=", help='fine-tuning runs: "name=override,override;name2=..."')
    ap.add_argument("--minutes-sim", type=float, default=30.0, help="the zero-shot model's minutes, if it is trained here")
    ap.add_argument("--minutes-fold", type=float, default=3.0)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--boards", type=int, default=300, help="synthetic boards, if the simulated set is built here")
    ap.add_argument("--renders", type=int, default=24, help="render crops per side of each Gerber layout")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    args.work = args.work.resolve()
    if not args.report_only:
        variants = parse_variants(args.variants)
        if not variants:
            raise SystemExit("--variants: give at least one fine-tuning run, e.g. \"default=\"")
        if not (args.photos / "splits.csv").is_file():
            raise SystemExit(f"{args.photos}: not a registered photo set (no splits.csv); scripts/real_photos.py makes it")
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise SystemExit(f"--seeds: {args.seeds!r} is not a comma-separated list of integers") from None
        args.work.mkdir(parents=True, exist_ok=True)
        try:
            run_all(args, variants, seeds)
        except CheckpointError as e:  # a damaged model in --work: its path and what is wrong, not a traceback
            raise SystemExit(str(e)) from None
    report(args)


if __name__ == "__main__":
    main()
