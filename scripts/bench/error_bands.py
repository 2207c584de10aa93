"""Where a trained model's wrong pixels lie: on the labels' class boundaries, or away from them.

A wrong pixel within 1 px of a boundary is mostly a matter of where the hand-drawn (or JPEG-saved)
label put the edge; errors farther out are what a better recipe can still fix. For each run the
table gives the pixel error, the share of wrong pixels within 1, 2 and 3 px of a boundary of the
labels, and the mIoU the same model would have if every error farther than 1 px from a boundary
were fixed: a ceiling for recipes that keep the model's edges as they are.

    python scripts/bench/error_bands.py --run resistor logs/train/runs/<time>/checkpoints/best.ckpt data/pcb-resistor \
        [--run NAME CKPT ROOT ...] [--split val]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

from pcbseg.api import CheckpointError, load_model
from pcbseg.data.layout import DatasetLayout, read_image, read_mask
from pcbseg.data.splits import read_splits

BANDS = (1, 2, 3)


def boundary_distance(truth: np.ndarray) -> np.ndarray:
    """Distance in px from each pixel to the nearest pixel whose 3x3 neighbourhood holds another label."""
    k = np.ones((3, 3), np.uint8)
    edge = cv2.dilate(truth, k) != cv2.erode(truth, k)
    return cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3)


def miou(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


def measure(ckpt: Path, root: Path, split: str) -> dict:
    model = load_model(ckpt)
    n, ignore = model.hparams.num_classes, int(model.hparams.get("ignore_index", 255))
    layout = DatasetLayout(root)
    files, _ = layout.image_files()
    cm, cm_fixed = np.zeros((n, n), np.int64), np.zeros((n, n), np.int64)
    wrong, near = 0, dict.fromkeys(BANDS, 0)
    images = 0
    for r in read_splits(layout.splits):
        if r.split != split:
            continue
        truth = read_mask(layout.mask_path(r.id))
        pred = model.predict(read_image(files[r.id]))
        keep = truth != ignore
        if keep.any() and truth[keep].max() >= n:
            raise SystemExit(f"{layout.mask_path(r.id)}: class id {truth[keep].max()} but {ckpt} predicts {n} classes")
        dist = boundary_distance(truth)
        bad = (pred != truth) & keep
        wrong += int(bad.sum())
        for b in BANDS:
            near[b] += int((bad & (dist <= b)).sum())
        t, p = truth[keep].astype(np.int64), pred[keep].astype(np.int64)
        cm += np.bincount(t * n + p, minlength=n * n).reshape(n, n)
        p_fixed = np.where(dist[keep] > 1, t, p)  # every error farther than 1 px from a boundary made right
        cm_fixed += np.bincount(t * n + p_fixed, minlength=n * n).reshape(n, n)
        images += 1
    if not images:
        raise SystemExit(f"{layout.splits}: no images in split {split!r}")
    return {"images": images, "mIoU": miou(cm), "error": wrong / cm.sum(),
            "near": {b: near[b] / max(wrong, 1) for b in BANDS}, "ceiling": miou(cm_fixed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", nargs=3, action="append", metavar=("NAME", "CKPT", "ROOT"), required=True,
                    help="a name for the row, a checkpoint, and the dataset folder to score it on")
    ap.add_argument("--split", default="val")
    args = ap.parse_args()
    for name, ckpt, root in args.run:
        for path in (Path(ckpt), Path(root)):
            if not path.exists():
                ap.error(f"--run {name}: {path} does not exist")
        if not (Path(root) / "splits.csv").is_file():
            ap.error(f"--run {name}: {root} is not a pcbseg dataset (no splits.csv)")
    rows = []
    for name, ckpt, root in args.run:
        try:
            m = measure(Path(ckpt), Path(root), args.split)
        except CheckpointError as e:
            raise SystemExit(f"--run {name}: {e}") from None
        rows.append(f"| {name} | {m['images']} | {m['mIoU']:.3f} | {m['error']:.4f} | "
                    + " | ".join(f"{m['near'][b]:.0%}" for b in BANDS) + f" | {m['ceiling']:.3f} |")
    body = "\n".join([
        f"Each model's final predictions on its {args.split} split, whole images, as `pcbseg-eval` makes them. "
        "A boundary pixel is one whose 3x3 neighbourhood in the labels holds another class.",
        "",
        "| run | images | mIoU | pixel error | wrong pixels within 1 px of a boundary | within 2 px | within 3 px "
        "| mIoU with every error beyond 1 px fixed |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ])
    write_section("error-bands", "Where the errors lie: class boundaries against the rest", body)


if __name__ == "__main__":
    main()
