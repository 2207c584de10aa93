"""Real board photos labelled from their own Gerber files, and the first per-class numbers on them.

    python scripts/real_photos.py [--work DIR] [--ckpt SIM_TO_REAL.ckpt] [--epochs 12] [--px-per-mm 15] [--reuse]

Steps, each a documented command or a few lines here:

1. ``pcbseg-import photos ../shared/data/board-photos/* --out WORK/photos`` with the pdp11_panel
   region that differs from its files (its README) as ``--ignore-region``: every photo's residual,
   confidence and time come from this run's ``registration.json``.
2. A copy of that dataset at ``--px-per-mm`` (images area-averaged, masks nearest), the scale the
   models see; figures of photo / labels / overlay per board.
3. (a) zero-shot: the ``sim_to_real`` model (``--ckpt``; trained on synthetic boards + Gerber
   renders, see docs/sim_to_real.md) predicts every photo, tile by tile;
   (b) leave-one-board-out: for each board, ``pcbseg-train`` on the other five boards' photos
   (cut into 384 px tiles so an epoch sees them all) with the default fine-tuning recipe, then
   ``pcbseg-eval`` on the held-out board's photos. Per-class IoU from the confusion matrices
   summed over all photos (a), or over the six held-out boards (b).

Writes docs/real_photos.md and docs/real_photos/*.jpg whatever the numbers are.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from pcbseg.api import load_model
from pcbseg.data.layout import DatasetLayout, read_image, read_mask, write_image, write_mask
from pcbseg.data.splits import read_splits
from pcbseg.evaluate import Evaluation
from pcbseg.taxonomy import get_taxonomy

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "board-photos"
DOCS = REPO / "docs"
FIGS = DOCS / "real_photos"
# pdp11_panel: the photographed board is an earlier revision in one region (board-photos/README.md, caveats)
PDP11_DIFFERS = ["pdp11_panel=174.6,-71.3,212.3,-54.2", "pdp11_panel=181.2,-90.4,188.7,-83.8"]
TAX = get_taxonomy("default")


def run(cmd: list[str], cwd: Path) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def rescale(src: Path, dst: Path, ppm: float, records: list[dict]) -> None:
    """The dataset at ``src`` with every image brought to ``ppm`` pixels per board mm (never enlarged)."""
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    for name in ("classes.yaml", "splits.csv"):
        shutil.copy(src / name, dst / name)
    own = {r["id"]: r["photo_px_per_mm"] * r["scale"] for r in records if r["written"]}
    layout = DatasetLayout(src)
    files, _ = layout.image_files()
    for image_id, path in files.items():
        s = min(1.0, ppm / own[image_id])
        image, mask = read_image(path), read_mask(layout.mask_path(image_id))
        size = (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s)))
        write_image(dst / "images" / f"{image_id}.png", cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        write_mask(dst / "masks" / f"{image_id}.png", cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))


def fold(src: Path, dst: Path, held_out: str, tile: int = 384, stride: int = 256) -> None:
    """A dataset whose val split is one board's photos (whole) and whose train split is the other
    boards' photos cut into tiles (those at least 20% labelled)."""
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    shutil.copy(src / "classes.yaml", dst / "classes.yaml")
    rows = []
    for r in read_splits(src / "splits.csv"):
        image, mask = read_image(src / "images" / f"{r.id}.png"), read_mask(src / "masks" / f"{r.id}.png")
        if r.group == held_out:
            write_image(dst / "images" / f"{r.id}.png", image)
            write_mask(dst / "masks" / f"{r.id}.png", mask)
            rows.append((r.id, "val", r.group))
            continue
        h, w = mask.shape
        ys = list(range(0, max(1, h - tile) + 1, stride)) + ([h - tile] if h > tile and (h - tile) % stride else [])
        xs = list(range(0, max(1, w - tile) + 1, stride)) + ([w - tile] if w > tile and (w - tile) % stride else [])
        for y in ys:
            for x in xs:
                m = mask[y:y + tile, x:x + tile]
                if (m != TAX.ignore_index).mean() < 0.2:
                    continue
                tid = f"{r.id}_{y}_{x}"
                write_image(dst / "images" / f"{tid}.png", image[y:y + tile, x:x + tile])
                write_mask(dst / "masks" / f"{tid}.png", m)
                rows.append((tid, "train", r.group))
    with open(dst / "splits.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "split", "group"])
        w.writerows(rows)


def per_class(cm: np.ndarray) -> dict[str, float | None]:
    inter = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    return {n: (float(inter[i] / union[i]) if union[i] else None) for i, n in enumerate(TAX.names)}


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def figure(native: Path, records: list[dict], board: str) -> Path:
    rows = []
    layout = DatasetLayout(native)
    files, _ = layout.image_files()
    for r in [r for r in records if r["board"] == board and r["written"]]:
        image = read_image(files[r["id"]])
        mask = read_mask(layout.mask_path(r["id"]))
        labels = TAX.colorize(mask)
        labels[mask == TAX.ignore_index] = (70, 70, 70)
        over = read_image(native / "overlays" / f"{r['id']}.jpg")
        s = 300 / image.shape[0]
        size = (round(image.shape[1] * s), 300)
        rows.append(np.hstack([cv2.resize(image, size, interpolation=cv2.INTER_AREA),
                               cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST),
                               cv2.resize(over, size, interpolation=cv2.INTER_AREA)]))
    width = max(r.shape[1] for r in rows)
    fig = np.vstack([cv2.copyMakeBorder(r, 0, 6, 0, width - r.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))
                     for r in rows])
    FIGS.mkdir(parents=True, exist_ok=True)
    out = FIGS / f"{board}.jpg"
    cv2.imwrite(str(out), fig[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 75])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--ckpt", type=Path, default=None, help="a sim_to_real checkpoint for the zero-shot numbers")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--px-per-mm", type=float, default=15.0)
    ap.add_argument("--reuse", action="store_true", help="keep the import and the fold runs an earlier run left in --work")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="real-photos-"))
    work.mkdir(parents=True, exist_ok=True)
    native, small = work / "photos", work / f"photos-{args.px_per_mm:g}ppm"
    boards = sorted(p for p in PHOTOS.iterdir() if p.is_dir())
    import_cmd = ["pcbseg-import", "photos", *map(str, boards), "--out", str(native), "--overwrite"]
    for region in PDP11_DIFFERS:
        import_cmd += ["--ignore-region", region]
    if not (args.reuse and (native / "registration.json").is_file()):
        run(import_cmd, work)
    records = json.loads((native / "registration.json").read_text())
    rescale(native, small, args.px_per_mm, records)
    names = [b.name for b in boards]
    figures = {b: figure(native, records, b) for b in names if any(r["board"] == b and r["written"] for r in records)}

    # (a) zero-shot
    zero, zero_about = None, ""
    if args.ckpt:
        summary = args.ckpt.parent.parent / "summary.json"
        if summary.is_file():
            sm = json.loads(summary.read_text())
            zero_about = (f" (this checkpoint: {sm.get('epochs')} epochs, {sm.get('wall_time_s', 0) / 60:.0f} min of training "
                          f"here, mIoU {sm['val']['mIoU']:.3f} on its own synthetic + render holdout)")
        module = load_model(args.ckpt)
        predictor = module.predictor(tile=512, overlap=128)
        ev = Evaluation(list(TAX.names), TAX.ignore_index)
        layout = DatasetLayout(small)
        files, _ = layout.image_files()
        for image_id, path in sorted(files.items()):
            ev.add(image_id, predictor.predict(read_image(path)).mask, read_mask(layout.mask_path(image_id)))
        zero = ev.metrics()

    # (b) leave one board out
    lobo_cm = np.zeros((TAX.num_classes, TAX.num_classes), np.int64)
    lobo_rows = []
    for board in names:
        if not any(r.group == board for r in read_splits(small / "splits.csv")):
            continue
        data, run_dir, eval_dir = work / "folds" / board, work / "runs" / board, work / "evals" / board
        if not (args.reuse and (eval_dir / "metrics.json").is_file()):
            fold(small, data, board)
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(eval_dir, ignore_errors=True)
            start = time.perf_counter()
            run([sys.executable, "-m", "pcbseg.cli.train", "data=folder", f"data.root={data}", "data.crop_size=256",
                 "data.batch_size=8", "data.val_tile=512", f"trainer.max_epochs={args.epochs}", "~callbacks.progress_bar",
                 "task_name=real_photos", f"hydra.run.dir={run_dir}"], work)
            run(["pcbseg-eval", f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", "data=folder", f"data.root={data}",
                 f"hydra.run.dir={eval_dir}"], work)
            (eval_dir / "seconds.txt").write_text(f"{time.perf_counter() - start:.0f}")
        m = json.loads((eval_dir / "metrics.json").read_text())
        lobo_cm += np.array(m["confusion_matrix"], np.int64)
        lobo_rows.append((board, m, float((eval_dir / "seconds.txt").read_text())))

    # --- docs/real_photos.md ---
    written = [r for r in records if r["written"]]
    lines = [
        "# Real board photos labelled from their own Gerber files",
        "",
        "Made by `python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]) + f"` on {time.strftime('%Y-%m-%d')} "
        "(2 CPU cores, no GPU). Every number here was measured by it" + (" (with `--reuse`, the import and the fold runs "
        "are those of the first run of the same command in that work folder)" if args.reuse else "") + ".",
        "",
        "The photographs are `../shared/data/board-photos` (six open-hardware boards, their fab files at the same "
        "revision). They were registered to their files and labelled with",
        "",
        "```bash",
        "pcbseg-import photos ../shared/data/board-photos/* --out data/board-photos \\",
        "    " + " ".join(f"--ignore-region {r}" for r in PDP11_DIFFERS),
        "```",
        "",
        f"{len(written)} board images from {len({r['photo'] for r in records})} photos (the whole import's time is in "
        "docs/benchmarks.md, `scripts/bench/photo_registration.py`). a7139_breakout's one photo shows three boards; the one "
        "with the radio module soldered on (the module hides almost all of it) is not found with a confident fit, so "
        "two of three are written.",
        "",
        "## Registration, per photo",
        "",
        "Residual: the median distance between where a matched block of the files' appearance sits in the photo and "
        "where the fit puts it (verification pass; held out when a lens or bow correction is applied), in mm and in "
        "photo pixels; p90: its 90th percentile. Correction: `lens` (radial distortion) or `bow` (a smooth "
        "displacement of the board) where it lowered the held-out misfit by 10 % or more. Seconds: this photo's "
        "registration, label transfer and writing, after the board's files were read.",
        "",
        "| image | side | state | residual mm | px | p90 mm | confidence | blocks | correction | seconds | ignored |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    state = {}
    for b in boards:
        meta = json.loads((b / "board.json").read_text())
        for p in meta.get("photos", []):
            state[(b.name, p["file"])] = f"{p.get('state', '?')}, {p.get('view', '?')}"
    for r in records:
        if not r["written"]:
            lines.append(f"| {r['id']} | – | {state.get((r['board'], r['photo']), '')} | not written: "
                         f"{'; '.join(r.get('reasons', []))} |||||||")
            continue
        px = r["residual_mm"] * r["photo_px_per_mm"] * r["scale"]
        lines.append(f"| {r['id']} | {r['side']} | {state.get((r['board'], r['photo']), '')} | {r['residual_mm']:.3f} | "
                     f"{px:.1f} | {r['p90_mm']:.3f} | {r['confidence']:.2f} | {r['blocks']} | {r['correction'] or 'none'} | "
                     f"{r['seconds']} | {100 * r['ignored_share']:.0f}% |")
    bare = [r["residual_mm"] for r in written if state.get((r["board"], r["photo"]), "").startswith("bare, top-down")]
    other = [r["residual_mm"] for r in written if not state.get((r["board"], r["photo"]), "").startswith("bare, top-down")]
    lines += ["", f"Median residual: {np.median(bare):.3f} mm on the {len(bare)} bare top-down images, "
              f"{np.median(other):.3f} mm on the {len(other)} assembled, oblique or multi-board ones; slowest photo "
              f"{max(r['seconds'] for r in written):.0f} s.", "",
              "`ignored` counts the whole written image: outside the board (the crop keeps a margin), the band on class "
              "boundaries, and what the photo shows that the files do not (parts without a footprint estimate, "
              "overhanging connectors, lot codes, marker ink, glare).", "",
              "## The boards", "", "Photo, labels (grey: ignored), and the files' edges drawn over the photo.", ""]
    for b, path in figures.items():
        lines += [f"### {b}", "", f"![{b}](real_photos/{path.name})", ""]
    lines += ["## First numbers on real photos", "",
              f"Scored at {args.px_per_mm:g} px/mm (every photo resampled to it), per-class IoU over every labelled pixel "
              "(confusion matrices summed), ignore excluded.", ""]
    head = "| | " + " | ".join(TAX.names) + " | mIoU | pixel error |"
    lines += [head, "|---|" + "---|" * (TAX.num_classes + 2)]
    if zero is not None:
        z = zero["per_class"]
        lines.append("| (a) zero-shot, sim_to_real | " + " | ".join(fmt(z[n]["iou"]) for n in TAX.names)
                     + f" | {fmt(zero['mIoU'])} | {fmt(zero['pixel_error_rate'])} |")
    if lobo_rows:
        ious = per_class(lobo_cm)
        valid = [v for v in ious.values() if v is not None]
        err = 1 - np.trace(lobo_cm) / lobo_cm.sum()
        lines.append(f"| (b) leave one board out, {args.epochs} epochs | " + " | ".join(fmt(ious[n]) for n in TAX.names)
                     + f" | {np.mean(valid):.3f} | {err:.3f} |")
        majority = lobo_cm.sum(1).max() / lobo_cm.sum()
        lines += ["", f"Predicting the most frequent class (background) everywhere would give a pixel error of "
                  f"{1 - majority:.3f} on the same pixels.", "", "Per held-out board (b):", "",
                  "| held-out board | " + " | ".join(TAX.names) + " | mIoU | minutes |", "|---|" + "---|" * (TAX.num_classes + 2)]
        for board, m, seconds in lobo_rows:
            pc = m["per_class"]
            lines.append(f"| {board} | " + " | ".join(fmt(pc[n]["iou"]) for n in TAX.names) + f" | {fmt(m['mIoU'])} | "
                         f"{seconds / 60:.1f} |")
    lines += ["", "(a) is a model trained with the recipe of docs/sim_to_real.md (`experiment=sim_to_real`: synthetic boards "
              f"and Gerber renders of the six boards in ../shared/data/gerbers, none of them photographed here){zero_about}; "
              "it has never seen a real photo. (b) "
              "fine-tunes the default ImageNet EfficientNet-Lite0 Unet (`pcbseg-train data=folder`, one frozen epoch) on "
              "the other five boards' photos; the held-out board's photos are never seen. Six boards and 14 images are a "
              "small test: these numbers say where things stand, not how a model ranks against another.", ""]
    (DOCS / "real_photos.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
