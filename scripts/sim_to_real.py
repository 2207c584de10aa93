"""Sim-to-real on the registered board photos: zero-shot, real-only, sim+real and the zero-shot model fine-tuned,
each leave-one-board-out.

    python scripts/sim_to_real.py --photos data/real-photos --work /tmp/s2r [--boards 300] [--renders 24] \
        [--minutes-sim 10] [--minutes-fold 4] [--seed 0] [--reuse] [--variants "freqw=model.class_weights=frequency"] \
        [--tta hflip,vflip]

``--photos`` is the registered photo set at 15 px/mm that ``scripts/real_photos.py`` writes
(``WORK/photos-15ppm``). Steps, each a documented command:

1. The simulated set, in the ``photo`` look: ``pcbseg-synth look=photo`` and ``pcbseg-import gerber
   --look photo`` of the six layouts in ../shared/data/gerbers (none of them is photographed),
   merged into ``sim``.
2. For each photographed board B: a fold whose val split is B's photos and whose train split is the
   other boards' photos cut in tiles (``real_photos.fold``), named ``photos``; and that fold merged
   with ``sim`` (every sim image in train, so B's photos stay the only holdout).
3. ``zero-shot``: one ``experiment=sim_to_real`` model (``--minutes-sim``), scored on each B with
   ``pcbseg-eval px_per_mm=15``. ``real-only``: ``experiment=real_photos`` on each fold.
   ``sim+real``: ``experiment=sim_plus_real`` on each merged fold (half the samples from each
   source). ``zero-shot+real`` and ``zero-shot+sim+real``: the same two fold recipes started from the
   zero-shot model's weights (``init_from``). Folds train for ``--minutes-fold`` each
   (``trainer.max_time``), without validation, and their final model is scored: B never picks a
   checkpoint or anything else.
4. ``--variants "name=override,override;..."``: more zero-shot models, each with its overrides (same
   data, minutes and seed), scored the same way and reported as extra rows.
5. ``--tta hflip,vflip`` (the default): every zero-shot model is also scored with test-time flips, as
   ``pcbseg-eval tta=[hflip,vflip]`` predicts, in rows of its own; ``--tta ''`` leaves them out.

Per-class IoU comes from the confusion matrices summed over the six held-out boards. Writes
docs/sim_to_real.md and docs/sim_to_real/*.jpg (the best and worst held-out photos), whatever the
numbers are.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from pcbseg.api import load_model
from pcbseg.data.layout import DatasetLayout, read_image, read_mask
from pcbseg.data.splits import read_splits
from pcbseg.evaluate import Evaluation
from pcbseg.inference import TTA_TRANSFORMS
from pcbseg.taxonomy import get_taxonomy
from real_photos import fold

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DOCS = REPO / "docs"
FIGS = DOCS / "sim_to_real"
TAX = get_taxonomy("default")
PHOTO_PPM = 15.0
RECIPES = ("zero-shot", "real-only", "sim+real", "zero-shot+real", "zero-shot+sim+real")


def run(cmd: list[str], cwd: Path) -> None:
    print("+", " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=cwd).returncode != 0:  # its own output above says why; no traceback of ours on top
        raise SystemExit(f"{Path(cmd[0]).name} {' '.join(cmd[1:3])} ... failed (its message is above); finished runs and "
                         f"built data in {cwd} are kept")


def clock(minutes: float) -> str:
    s = round(minutes * 60)
    return f"00:{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def train(experiment: str, root: Path, out: Path, minutes: float, seed: int, cwd: Path,
          extra: list[str] | None = None) -> Path:
    """A time-budget run without validation; its final model (``final.ckpt``): nothing picks it on the val split."""
    cmd = [sys.executable, "-m", "pcbseg.cli.train", f"experiment={experiment}", f"data.root={root}", f"seed={seed}",
           "trainer.max_epochs=-1", f"+trainer.max_time={clock(minutes)}", "~callbacks.early_stopping",
           "callbacks.model_checkpoint.monitor=null", "callbacks.model_checkpoint.filename=final",
           "~callbacks.progress_bar", "+trainer.limit_val_batches=0", f"hydra.run.dir={out}",
           # without validation the checkpoint must be written at each epoch end, whatever the experiment's val interval
           "+callbacks.model_checkpoint.save_on_train_epoch_end=true", *(extra or [])]
    if not (out / "summary.json").is_file():
        shutil.rmtree(out, ignore_errors=True)
        run(cmd, cwd)
    ckpt = out / "checkpoints" / "final.ckpt"
    if not ckpt.is_file():
        raise SystemExit(f"{out}: the run finished without {ckpt.name}; nothing to score")
    return ckpt


def build_sim(data: Path, boards: int, renders: int, layouts: list[Path] | None, cwd: Path) -> Path:
    """``data/sim``: ``boards`` synthetic boards and ``renders`` crops per side of each Gerber layout (the six in
    ../shared/data/gerbers unless ``layouts``), all in the photo look, merged."""
    layouts = layouts or sorted(p for p in (SHARED / "gerbers").iterdir() if p.is_dir())
    run(["pcbseg-synth", f"out={data / 'sim-synth'}", f"num_boards={boards}", "size=320", "look=photo",
         "valid_pct=0.1", "overwrite=true"], cwd)
    run(["pcbseg-import", "gerber", *map(str, layouts), "--out", str(data / "sim-gerber"), "--renders",
         str(renders), "--size", "384", "--look", "photo", "--overwrite"], cwd)
    run(["pcbseg-import", "merge", str(data / "sim-synth"), str(data / "sim-gerber"), "--out", str(data / "sim"),
         "--overwrite"], cwd)
    return data / "sim"


def merged_fold(sim: Path, photos: Path, dst: Path, cwd: Path) -> None:
    """``sim`` + ``photos`` with every sim image in train: the held-out board's photos are the only val."""
    if (dst / "splits.csv").is_file():
        return
    run(["pcbseg-import", "merge", str(sim), str(photos), "--out", str(dst), "--overwrite"], cwd)
    rows = list(csv.reader((dst / "splits.csv").open()))
    split = rows[0].index("split")
    for r in rows[1:]:
        if r[0].startswith(f"{sim.name}__"):
            r[split] = "train"
    with (dst / "splits.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def per_class(cm: np.ndarray) -> list[float | None]:
    inter = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - inter
    return [float(inter[i] / union[i]) if union[i] else None for i in range(len(cm))]


def bare_photos() -> set[str]:
    """Ids of the registered photos of bare boards, from each board's ``board.json`` (``state: bare``).

    A ``mixed`` photo (several boards, some assembled) is left out: its crops are not told apart there."""
    out = set()
    for meta in sorted((SHARED / "board-photos").glob("*/board.json")):
        try:
            photos = json.loads(meta.read_text()).get("photos", [])
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"{meta}: cannot be read as JSON ({e})") from e
        for p in photos:
            if p.get("state") == "bare":
                out.add(f"{meta.parent.name}_{Path(p['file']).stem}")
    return out


def confusion(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    keep = truth != TAX.ignore_index
    n = TAX.num_classes
    return np.bincount(truth[keep].astype(np.int64) * n + pred[keep], minlength=n * n).reshape(n, n)


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def score(ckpt: Path, root: Path, tta: tuple[str, ...] = (), every_image: bool = False, adapt_bn: float = 0.0,
          ) -> tuple[np.ndarray, dict[str, float], dict[str, np.ndarray]]:
    """Confusion matrix, per-image mIoU and predicted masks of a model on ``root``'s val photos (``every_image``:
    all of them, for a model that saw none) at 15 px/mm, with ``tta`` and ``adapt_bn`` as ``pcbseg-eval`` applies
    them."""
    model = load_model(ckpt)
    predictor = model.predictor(px_per_mm=PHOTO_PPM, tta=tta, adapt_bn=adapt_bn)
    layout = DatasetLayout(root)
    files, _ = layout.image_files()
    ev = Evaluation(list(TAX.names), TAX.ignore_index)
    masks = {}
    for r in read_splits(layout.splits):
        if r.split != "val" and not every_image:
            continue
        masks[r.id] = predictor.predict(read_image(files[r.id])).mask
        ev.add(r.id, masks[r.id], read_mask(layout.mask_path(r.id)))
    m = ev.metrics()
    return np.asarray(m["confusion_matrix"], np.int64), {i["id"]: i["mIoU"] for i in m["per_image"]}, masks


def figure(root: Path, image_id: str, preds: dict[str, np.ndarray], dest: Path) -> None:
    """Photo, labels, and each recipe's prediction (ignored pixels grey in all), side by side."""
    layout = DatasetLayout(root)
    files, _ = layout.image_files()
    image, truth = read_image(files[image_id]), read_mask(layout.mask_path(image_id))
    ignored = truth == TAX.ignore_index
    cols = [image, TAX.colorize(truth)]
    for recipe in RECIPES:
        shown = TAX.colorize(preds[recipe])
        shown[ignored] = (128, 128, 128)
        cols.append(shown)
    fig = np.hstack([np.pad(c, ((0, 0), (0, 6), (0, 0)), constant_values=255) for c in cols])
    s = min(1.0, 1600 / fig.shape[1])
    cv2.imwrite(str(dest), cv2.resize(fig, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)[..., ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, 80])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, required=True, help="registered photos at 15 px/mm (scripts/real_photos.py)")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--boards", type=int, default=300, help="synthetic boards")
    ap.add_argument("--renders", type=int, default=24, help="render crops per side of each Gerber layout")
    ap.add_argument("--layouts", type=Path, nargs="*", default=None,
                    help="Gerber board folders to render (default: all of ../shared/data/gerbers)")
    ap.add_argument("--minutes-sim", type=float, default=10.0)
    ap.add_argument("--minutes-fold", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true", help="keep the data and runs an earlier run left in --work")
    ap.add_argument("--data-only", action="store_true", help="build the simulated set and the folds, then stop")
    ap.add_argument("--variants", default="", help='more zero-shot models: "name=override,override;name2=..."')
    ap.add_argument("--tta", default="hflip,vflip",
                    help="also score every zero-shot model with these test-time transforms (pcbseg-eval tta=[...]); '' for none")
    args = ap.parse_args()
    bad = [v for v in args.variants.split(";") if v.strip() and "=" not in v.split(",")[0]]
    if bad:
        ap.error(f"--variants: {bad[0]!r} is not name=override[,override...]")
    variants = {f"zero-shot {name.strip()}": ovs.split(",")
                for name, ovs in (v.split("=", 1) for v in args.variants.split(";") if v.strip())}
    tta = tuple(t.strip() for t in args.tta.split(",") if t.strip())
    unknown = [t for t in tta if t not in TTA_TRANSFORMS]
    if unknown:
        ap.error(f"--tta: unknown transform(s) {unknown}; choose from {list(TTA_TRANSFORMS)}")
    zero_models = ("zero-shot", *variants)
    with_tta = {f"{name}, TTA": name for name in zero_models} if tta else {}
    recipes = (*RECIPES, *variants, *with_tta)
    work = (args.work or Path(tempfile.mkdtemp(prefix="sim2real-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    t0 = time.perf_counter()

    # 1. the simulated set
    sim = data / "sim"
    if not (args.reuse and (sim / "splits.csv").is_file()):
        build_sim(data, args.boards, args.renders, args.layouts, work)

    # 2. folds
    boards = sorted({r.group for r in read_splits(args.photos / "splits.csv")})
    for board in boards:
        photos = work / "folds" / board / "photos"
        if not (args.reuse and (photos / "splits.csv").is_file()):
            fold(args.photos, photos, board)
        merged_fold(sim, photos, work / "folds" / board / "sim", work)
    if args.data_only:
        return

    # 3. models and scores
    zero = train("sim_to_real", sim, work / "runs" / "zero-shot", args.minutes_sim, args.seed, work)
    more = {name: train("sim_to_real", sim, work / "runs" / name.replace(" ", "-"), args.minutes_sim, args.seed, work,
                        ovs) for name, ovs in variants.items()}
    cms = {r: np.zeros((TAX.num_classes, TAX.num_classes), np.int64) for r in recipes}
    bare = bare_photos()
    bare_cms = {r: np.zeros_like(cms[r]) for r in recipes}  # the trace target is on bare boards
    bare_seen: set[str] = set()
    by_board: dict[str, dict[str, float]] = {}
    images: dict[str, tuple[str, float, dict[str, np.ndarray]]] = {}  # id -> (board, sim+real mIoU, masks)
    steps: dict[str, list[int]] = {r: [] for r in recipes}
    for board in boards:
        photos = work / "folds" / board / "photos"
        ckpts = {
            "zero-shot": zero,
            "real-only": train("real_photos", photos, work / "runs" / board / "real-only", args.minutes_fold,
                               args.seed, work),
            "sim+real": train("sim_plus_real", work / "folds" / board / "sim", work / "runs" / board / "sim+real",
                              args.minutes_fold, args.seed, work),
            # the zero-shot model never saw a photo, so starting a fold from it keeps the held-out board unseen
            "zero-shot+real": train("real_photos", photos, work / "runs" / board / "zero-shot+real", args.minutes_fold,
                                    args.seed, work, [f"init_from={zero}"]),
            "zero-shot+sim+real": train("sim_plus_real", work / "folds" / board / "sim",
                                        work / "runs" / board / "zero-shot+sim+real", args.minutes_fold, args.seed,
                                        work, [f"init_from={zero}"]),
            **more,
        }
        ckpts.update({name: ckpts[base] for name, base in with_tta.items()})
        by_board[board] = {}
        masks: dict[str, dict[str, np.ndarray]] = {}
        for recipe, ckpt in ckpts.items():
            cm, per_image, predicted = score(ckpt, photos, tta if recipe in with_tta else ())
            cms[recipe] += cm
            by_board[board][recipe] = float(np.nanmean([v if v is not None else np.nan for v in per_class(cm)]))
            for image_id, mask in predicted.items():
                masks.setdefault(image_id, {})[recipe] = mask
                if image_id in bare:
                    bare_cms[recipe] += confusion(mask, read_mask(photos / "masks" / f"{image_id}.png"))
                    bare_seen.add(image_id)
                if recipe == "sim+real":
                    images[image_id] = (board, per_image[image_id], masks[image_id])
            steps[recipe].append(json.loads((ckpt.parent.parent / "summary.json").read_text())["global_steps"])

    # --- figures: the best and worst held-out photos by the sim+real model's mIoU
    FIGS.mkdir(parents=True, exist_ok=True)
    for old in FIGS.glob("*.jpg"):
        old.unlink()
    ranked = sorted((v[1], k) for k, v in images.items() if v[1] is not None and np.isfinite(v[1]))
    shown = [("worst", *ranked[0]), ("best", *ranked[-1])] if ranked else []
    for tag, _, image_id in shown:
        board, _, preds = images[image_id]
        figure(work / "folds" / board / "photos", image_id, preds, FIGS / f"{tag}.jpg")

    # --- docs/sim_to_real.md
    zero_summary = json.loads((zero.parent.parent / "summary.json").read_text())
    total_minutes = (time.perf_counter() - t0) / 60
    majority = 1 - max(cms["real-only"].sum(1)) / cms["real-only"].sum()
    lines = [
        "# Sim-to-real: models that work on real board photos",
        "",
        "Made by `python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]) + f"` on {time.strftime('%Y-%m-%d')}"
        f" (2 CPU cores, no GPU; {total_minutes:.0f} min in all" + (", with `--reuse`: the data and runs of an earlier "
        "run of the same command" if args.reuse else "") + "). Every number here was measured by it.",
        "",
        f"The measuring stick is the registered board photos of docs/real_photos.md: {len(images)} images of "
        f"{len(boards)} boards ({', '.join(boards)}), labelled pixel by pixel from their own fab files and resampled to "
        f"{PHOTO_PPM:g} px/mm. Each recipe is scored **leave one board out**: a board's photos are predicted by a "
        "model that never saw that board, and the confusion matrices of the held-out boards are summed.",
        "",
        "| recipe | what it trains on | " + " | ".join(TAX.names)
        + " | mIoU | pixel error | trace, bare boards | optimiser steps |",
        "|---|---|" + "---|" * len(TAX.names) + "---|---|---|---|",
    ]
    what = {
        "zero-shot": f"synthetic boards + Gerber renders only ({args.minutes_sim:g} min, one model)",
        "real-only": f"the other boards' photos ({args.minutes_fold:g} min per fold)",
        "sim+real": f"both, half the samples from each ({args.minutes_fold:g} min per fold)",
        "zero-shot+real": f"as real-only, started from the zero-shot model ({args.minutes_fold:g} min per fold)",
        "zero-shot+sim+real": f"as sim+real, started from the zero-shot model ({args.minutes_fold:g} min per fold)",
        **{name: "as zero-shot, with " + " ".join(f"`{o}`" for o in ovs) for name, ovs in variants.items()},
        **{name: f"the {base} model, predicted with test-time flips (`tta=[{','.join(tta)}]`)"
           for name, base in with_tta.items()},
    }
    mious = {}
    for recipe in recipes:
        cm = cms[recipe]
        ious = per_class(cm)
        mious[recipe] = float(np.nanmean([v for v in ious if v is not None]))
        err = 1 - np.trace(cm) / cm.sum()
        bare_trace = per_class(bare_cms[recipe])[TAX.names.index("trace")]
        lines.append(f"| {recipe} | {what[recipe]} | " + " | ".join(fmt(v) for v in ious)
                     + f" | **{mious[recipe]:.3f}** | {err:.3f} | {fmt(bare_trace)} | {np.mean(steps[recipe]):.0f} |")
    lines += [
        "",
        f"Predicting the most frequent class (background) everywhere gives a pixel error of {majority:.3f} on the same "
        f"pixels. sim+real minus real-only: **{mious['sim+real'] - mious['real-only']:+.3f}** mIoU (target +0.05); "
        f"started from the zero-shot model: **{mious['zero-shot+sim+real'] - mious['real-only']:+.3f}**; "
        f"zero-shot: **{mious['zero-shot']:.3f}** (target 0.40). Trace on bare boards (target 0.6) is scored on the "
        f"{len(bare_seen)} photos of boards without parts ({', '.join(sorted(bare_seen))}; `state: bare` in their "
        "board.json; a photo of several boards, some of them assembled, is left out).",
        "",
    ]
    # models that differ from zero-shot only by the training seed: their mean is the figure to quote
    seeded = ["zero-shot", *[n for n, ovs in variants.items() if all(o.startswith("seed=") for o in ovs)]]
    if len(seeded) > 1:
        def mean(names: list[str]) -> str:
            vals = [mious[n] for n in names]
            return f"**{np.mean(vals):.3f}** ({', '.join(f'{v:.3f}' for v in vals)})"
        lines += [f"Zero-shot over {len(seeded)} training seeds, mean mIoU: {mean(seeded)}"
                  + (f"; with test-time flips: {mean([f'{n}, TTA' for n in seeded])}" if tta else "")
                  + ". Test-time flips need no training; they run the model once more per flip on every tile.", ""]
    lines += [
        "Per held-out board (mIoU over the classes present in its photos or predictions):",
        "",
        "| held-out board | " + " | ".join(recipes) + " |",
        "|---|" + "---|" * len(recipes),
        *[f"| {b} | " + " | ".join(f"{by_board[b][r]:.3f}" for r in recipes) + " |" for b in boards],
        "",
        "## The best and the worst held-out photo",
        "",
        "Photo, labels from the fab files, then the " + ", ".join(RECIPES) + " predictions (grey: ignored in "
        "scoring). Chosen by the sim+real model's per-image mIoU.",
        "",
    ]
    for tag, miou, image_id in shown:
        lines += [f"**{tag}**: {image_id} (sim+real mIoU {miou:.3f})", "", f"![{tag}](sim_to_real/{tag}.jpg)", ""]
    lines += [
        "## How it was made",
        "",
        f"1. Simulated set: `pcbseg-synth look=photo num_boards={args.boards} "
        f"size=320 valid_pct=0.1` and `pcbseg-import gerber ../shared/data/gerbers/* --renders {args.renders} --size 384 "
        "--look photo`, merged. The photo look (`pcbseg.data.synth.scene`) adds what the photographs show and the "
        "clean renders lacked: paper, graph-paper, wood, glass and mat backdrops, lot codes and marker ink no file "
        "holds, oblique views, lens distortion, glare bands, exposure and white balance; labels follow every warp. "
        "Copper under the mask is painted as the photos show it (the mask's own colour 0.95-1.6x as bright, "
        "measured on the registered photos, not a copper tint), thin traces catch the light as a warm lift, and "
        "drilled holes show the surface under the board, as in the photos (docs/benchmarks.md, photo-appearance); "
        "70% of synthetic boards get a pour, half of them a whole ground plane (trace is 30-60% of the pixels in 10 "
        "of the 14 photos).",
        f"2. zero-shot: `pcbseg-train experiment=sim_to_real` for {args.minutes_sim:g} min (`trainer.max_time`; "
        f"{zero_summary['global_steps']} steps; mIoU {zero_summary['val']['mIoU']:.3f} on its own simulated holdout), "
        "then each board's photos predicted with `px_per_mm=15` (the model was trained at 12 px/mm: photos are "
        "shrunk by 0.8).",
        "3. real-only: `pcbseg-train experiment=real_photos` on the fold (the other boards' photos in 384 px tiles).",
        "4. sim+real: `pcbseg-import merge` of the simulated set and the fold, then `pcbseg-train "
        "experiment=sim_plus_real` (`data.source_weights={sim: 1, photos: 1}`; encoder frozen for the first 10% of "
        "the run, `model.freeze_pct=0.1`: one epoch of the merged set, the default, would be 40% of it, against about "
        "10% for the other two recipes).",
        "5. zero-shot+real and zero-shot+sim+real: steps 3 and 4 with `init_from=<zero-shot run>/checkpoints/final.ckpt`"
        ": a new run (schedule, optimiser and frozen phase afresh) that starts from every weight of the zero-shot "
        "model, which never saw a photo.",
        "",
        "Folds train without validation and their final model is scored, so the held-out board chooses nothing. "
        "Six boards and a few photos each are a small test: differences of a few hundredths are within what "
        "another seed would move.",
    ]
    (DOCS / "sim_to_real.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
