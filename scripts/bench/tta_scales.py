"""Multi-scale test-time averaging on the registered photos, for zero-shot models already trained.

    python scripts/bench/tta_scales.py --photos data/bench-photos --work /tmp/zs old-look bare-sparse

For each label, ``WORK/LABEL/runs/s0/checkpoints/final.ckpt`` (as ``zero_shot.py`` writes it) predicts every photo
at its usual input scale times 0.8, 1 and 1.25; the logits, brought back to the photo's pixels, are averaged over
each subset of those zooms before the argmax. Prints per-class IoU (confusion matrix summed over the photos),
pixel error and trace IoU on the bare boards per subset, and writes the per-photo confusion matrices to
``WORK/LABEL/scores/scales_s0.json``. Results go into docs/benchmarks.md by hand (zero-shot section).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pcbseg.api import CheckpointError, load_model
from pcbseg.data.layout import DatasetLayout, read_image, read_mask
from pcbseg.data.splits import read_splits
from sim_to_real import PHOTO_PPM, bare_photos, confusion

FACTORS = (0.8, 1.0, 1.25)
SUBSETS = {"1": (1.0,), "0.8": (0.8,), "1.25": (1.25,), "0.8+1": (0.8, 1.0), "1+1.25": (1.0, 1.25),
           "0.8+1+1.25": FACTORS}


def score_label(ckpt: Path, photos: Path) -> dict[str, dict[str, list]]:
    model = load_model(ckpt)
    base = model.predictor(px_per_mm=PHOTO_PPM).scale
    layout = DatasetLayout(photos)
    files, _ = layout.image_files()
    cms: dict[str, dict[str, list]] = {k: {} for k in SUBSETS}
    for r in read_splits(layout.splits):
        image, truth = read_image(files[r.id]), read_mask(layout.mask_path(r.id))
        logits = {f: model.predictor(scale=base * f).predict(image, return_logits=True).logits for f in FACTORS}
        for name, fs in SUBSETS.items():
            pred = sum(logits[f] for f in fs).argmax(0).astype(np.uint8)
            cms[name][r.id] = confusion(pred, truth).tolist()
    return cms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, required=True, help="registered photos at 15 px/mm")
    ap.add_argument("--work", type=Path, required=True, help="the --work of zero_shot.py")
    ap.add_argument("labels", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(2)
    missing = [p for p in (args.work / x / "runs" / "s0" / "checkpoints" / "final.ckpt" for x in args.labels)
               if not p.is_file()]
    if missing:
        sys.exit(f"no zero-shot model at {', '.join(map(str, missing))}: run scripts/bench/zero_shot.py first")
    if not (args.photos / "splits.csv").is_file():
        sys.exit(f"{args.photos}: not a registered photo set (no splits.csv); scripts/real_photos.py makes it")
    bare = bare_photos()
    for label in args.labels:
        t0 = time.time()
        try:
            cms = score_label(args.work / label / "runs" / "s0" / "checkpoints" / "final.ckpt", args.photos)
        except CheckpointError as e:
            sys.exit(str(e))
        print(f"{label}: {time.time() - t0:.0f} s", flush=True)
        for name, per in cms.items():
            cm = sum(np.array(c) for c in per.values())
            iou = np.diag(cm) / np.maximum(cm.sum(0) + cm.sum(1) - np.diag(cm), 1)
            b = sum(np.array(c) for i, c in per.items() if i in bare)
            bare_trace = b[1, 1] / max(b[1].sum() + b[:, 1].sum() - b[1, 1], 1)
            print(f"  zooms {name:11s} mIoU {iou.mean():.3f}  pixel error {1 - np.trace(cm) / cm.sum():.3f}  "
                  f"trace, bare boards {bare_trace:.3f}  per class " + " ".join(f"{x:.3f}" for x in iou))
        dest = args.work / label / "scores" / "scales_s0.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(cms))


if __name__ == "__main__":
    main()
