"""Zero-shot on the registered board photos: `experiment=sim_to_real` models trained on the simulated set only,
scored on every photo, several training seeds, for comparing changes to the photo look or the recipe.

    python scripts/bench/zero_shot.py --photos data/bench-photos --work /tmp/zs --minutes 30 --seeds 0,1 \
        [--boards 300] [--renders 24] [--label "this code"] [--tta hflip,vflip] [--train data.px_per_mm=8 ...]
        [--sim data/sim] [--report-only]

``--photos`` is the registered photo set at 15 px/mm (``scripts/real_photos.py``). Per ``--label`` (the code
or recipe the jobs ran: run the script from an installed copy of other code with ``PYTHONPATH`` to compare, or
give pcbseg-train overrides with ``--train``), the simulated set is built once in ``WORK/LABEL/data`` as
``scripts/sim_to_real.py`` builds it (or ``--sim`` names one), then one 30-minute (``--minutes``) model per seed,
without validation, its final model scored on all photos: none was seen in training, so no fold is needed.
Per-class IoU from the confusion matrix summed over the photos, with and without test-time flips; trace IoU on
the photos of bare boards. docs/sim_to_real.md has the fold recipes; this section the zero-shot seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _report import write_section  # noqa: E402

from pcbseg.data.layout import read_mask  # noqa: E402
from pcbseg.inference import TTA_TRANSFORMS  # noqa: E402
from sim_to_real import TAX, bare_photos, build_sim, confusion, per_class, score, train  # noqa: E402


def run_seed(args: argparse.Namespace, seed: int, tta: tuple[str, ...]) -> None:
    dest = args.work / args.label / "scores" / f"s{seed}.json"
    if dest.exists():
        return
    data = args.work / args.label / "data"
    if args.sim is not None:
        sim = args.sim
    else:
        sim = data / "sim" if (data / "sim" / "splits.csv").is_file() else build_sim(data, args.boards, args.renders,
                                                                                      None, args.work)
    ckpt = train("sim_to_real", sim, args.work / args.label / "runs" / f"s{seed}", args.minutes, seed, args.work,
                 extra=args.train)
    bare = bare_photos()
    out = {"steps": json.loads((ckpt.parent.parent / "summary.json").read_text())["global_steps"],
           "overrides": args.train}
    for name, t in (("plain", ()), ("tta", tta)):
        if name == "tta" and not t:
            continue
        cm, _, masks = score(ckpt, args.photos, t, every_image=True)
        # kept per photo so a later look at one board needs no model and no second scoring
        per_image = {i: confusion(m, read_mask(args.photos / "masks" / f"{i}.png")) for i, m in masks.items()}
        bare_cm = sum((c for i, c in per_image.items() if i in bare), np.zeros_like(cm))
        out[name] = {"confusion_matrix": cm.tolist(), "bare_confusion_matrix": bare_cm.tolist(),
                     "bare_images": sorted(i for i in masks if i in bare), "images": len(masks),
                     "per_image": {i: c.tolist() for i, c in sorted(per_image.items())}}
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out))


def _ms(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def _recipes(by_label: dict[str, list[tuple[int, dict]]]) -> str:
    """The pcbseg-train overrides each label's runs were given (``--train``), where any were."""
    lines = [f"- {label}: " + ", ".join(f"`{o}`" for o in runs[0][1]["overrides"])
             for label, runs in by_label.items() if runs[0][1].get("overrides")]
    return "\n\nTraining overrides:\n\n" + "\n".join(lines) if lines else ""


def report(args: argparse.Namespace) -> None:
    found = sorted(args.work.glob("*/scores/s*.json"))
    if not found:  # an empty table would replace the section that is there
        raise SystemExit(f"{args.work}: no scored zero-shot runs; docs/benchmarks.md left as it is")
    by_label: dict[str, list[tuple[int, dict]]] = {}
    for f in found:
        by_label.setdefault(f.parent.parent.name, []).append((int(f.stem[1:]), json.loads(f.read_text())))
    trace = TAX.names.index("trace")
    head = "| code | seed | predicted | " + " | ".join(TAX.names) + " | mIoU | pixel error | trace, bare boards | steps |"
    rows = [head, "|---|---|---|" + "---|" * len(TAX.names) + "---|---|---|---|"]
    means = []
    for label, runs in by_label.items():
        for kind in ("plain", "tta"):
            mious, bares = [], []
            for seed, r in sorted(runs):
                if kind not in r:
                    continue
                cm, bare_cm = np.array(r[kind]["confusion_matrix"]), np.array(r[kind]["bare_confusion_matrix"])
                ious = per_class(cm)
                miou = float(np.nanmean([v for v in ious if v is not None]))
                err = 1 - np.trace(cm) / cm.sum()
                bt = per_class(bare_cm)[trace]
                mious.append(miou)
                bares.append(bt)
                rows.append(f"| {label} | {seed} | {'flips' if kind == 'tta' else 'plain'} | "
                            + " | ".join("–" if v is None else f"{v:.3f}" for v in ious)
                            + f" | **{miou:.3f}** | {err:.3f} | {'–' if bt is None else f'{bt:.3f}'} | {r['steps']} |")
            if mious:
                means.append(f"| {label} | {'flips' if kind == 'tta' else 'plain'} | {len(mious)} | {_ms(mious)} | "
                             f"{_ms([b for b in bares if b is not None])} |")
    body = ("`experiment=sim_to_real` for the minutes given (`trainer.max_time`, no validation, final model), trained "
            "on the simulated set of scripts/sim_to_real.py (synthetic boards + Gerber renders in the photo look), "
            "then every registered photo predicted at 15 px/mm, plain and with test-time flips (`tta=[hflip,vflip]`). "
            "IoU from the confusion matrix summed over the photos; trace on the photos of bare boards (`state: bare`). "
            "Targets (issue 15): mIoU 0.40, bare-board trace 0.6.\n\n" + "\n".join(rows)
            + "\n\nOver the seeds:\n\n| code | predicted | seeds | mIoU (mean ± sd) | trace, bare boards (mean ± sd) |\n"
            "|---|---|---|---|---|\n" + "\n".join(means) + _recipes(by_label))
    write_section("zero-shot", "Zero-shot on the registered photos, seed by seed", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, required=True, help="registered photos at 15 px/mm (scripts/real_photos.py)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--boards", type=int, default=300, help="synthetic boards")
    ap.add_argument("--renders", type=int, default=24, help="render crops per side of each Gerber layout")
    ap.add_argument("--label", default="this code")
    ap.add_argument("--tta", default="hflip,vflip", help="test-time transforms for the second score; '' for none")
    ap.add_argument("--train", action="append", default=[], metavar="OVERRIDE",
                    help="a pcbseg-train override for this label's runs, e.g. data.px_per_mm=8 (repeatable)")
    ap.add_argument("--sim", type=Path, help="an existing simulated set to train on instead of building one")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    args.work = args.work.resolve()
    if not args.report_only:
        if args.sim is not None and not (args.sim / "splits.csv").is_file():
            raise SystemExit(f"--sim {args.sim}: not a dataset folder (no splits.csv)")
        args.sim = args.sim.resolve() if args.sim is not None else None
        if not (args.photos / "splits.csv").is_file():
            raise SystemExit(f"{args.photos}: not a registered photo set (no splits.csv); scripts/real_photos.py makes it")
        tta = tuple(t.strip() for t in args.tta.split(",") if t.strip())
        unknown = [t for t in tta if t not in TTA_TRANSFORMS]
        if unknown:
            raise SystemExit(f"--tta: unknown transform(s) {unknown}; choose from {list(TTA_TRANSFORMS)}")
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise SystemExit(f"--seeds: {args.seeds!r} is not a comma-separated list of integers") from None
        if args.minutes <= 0:
            raise SystemExit(f"--minutes: {args.minutes:g} is not a training time; give minutes > 0")
        args.work.mkdir(parents=True, exist_ok=True)  # the jobs run in it
        for seed in seeds:
            run_seed(args, seed, tta)
            print(f"done {args.label}/s{seed}", flush=True)
    report(args)


if __name__ == "__main__":
    main()
