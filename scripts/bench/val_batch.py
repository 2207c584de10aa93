"""Seconds per image of a validation pass over whole images, by val batch size (CPU).

Lightning's ``trainer.validate`` with pcbseg's default model (Unet + EfficientNet-Lite0, untrained:
the speed does not depend on the weights) and the CPU precision default, on the first ``--images``
val images of a dataset, once per batch size in ``--batches``. Each size gets a fresh datamodule
(so its first pass decodes its images) and the first size in the list also warms PyTorch up, so list
a size twice to see that cost. The chosen default, ``EVAL_BATCH_PX`` pixels a batch, comes from this.

    python scripts/bench/val_batch.py --root /tmp/rare640/set --batches 2,8,4,2 --images 96
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, required=True, help="a dataset in the canonical layout")
    ap.add_argument("--batches", default="2,8,4,2")
    ap.add_argument("--images", type=int, default=96)
    args = ap.parse_args()
    if not (args.root / "splits.csv").is_file():
        ap.error(f"--root {args.root}: not a dataset (no splits.csv)")
    from pcbseg.cli.train import build
    from pcbseg.config import compose

    torch.set_num_threads(2)
    rows = ["| val batch size | seconds | ms per image |", "|---|---|---|"]
    size = None
    for vb in (int(b) for b in args.batches.split(",")):
        cfg = compose("train", ["data=folder", f"data.root={args.root}", f"data.val_batch_size={vb}"])
        dm, model = build(cfg)
        trainer = L.Trainer(accelerator="cpu", precision=cfg.trainer.precision, logger=False, enable_progress_bar=False,
                            enable_model_summary=False, enable_checkpointing=False,
                            limit_val_batches=max(1, args.images // vb))
        t = time.perf_counter()
        trainer.validate(model, datamodule=dm, verbose=False)
        seconds = time.perf_counter() - t
        n = min(len(dm.datasets["val"]), max(1, args.images // vb) * vb)
        size = size or dm.datasets["val"].load(0)[0].shape[:2]
        rows.append(f"| {vb} | {seconds:.1f} | {1000 * seconds / n:.0f} |")
        print(rows[-1], flush=True)
    write_section("val-batch", "Validation passes over whole images: seconds by val batch size",
                  f"Dataset `{args.root}` (val images {size[1]}x{size[0]} px), {args.images} val images per pass, "
                  f"precision `{cfg.trainer.precision}`, 2 threads; rows in the order run (the first also warms "
                  "PyTorch up).\n\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
