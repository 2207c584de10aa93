"""Training images/s: pcbseg-train (Lightning + data pipeline) against a bare PyTorch loop.

Both run the same model (smp Unet + EfficientNet-Lite0, channels_last, encoder unfrozen), batch
size, crop size, loss and optimiser on the same threads, one after the other in this process. The
bare loop trains on batches already in memory, so the gap is everything pcbseg adds: Lightning's
loop, logging, metrics, and reading and augmenting images.

    python scripts/bench/train_throughput.py [--steps 30] [--batch 8] [--crop 224]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section

from pcbseg.cli.train import train
from pcbseg.config import compose


class StepTimer(L.Callback):
    """Wall time from the end of batch ``warmup`` to the end of the last batch (loading included)."""

    last: StepTimer | None = None  # Hydra builds the instance; this is how the script finds it

    def __init__(self, warmup: int):
        self.warmup, self.t0, self.t1, self.n = warmup, 0.0, 0.0, 0
        StepTimer.last = self

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.n += 1
        if self.n == self.warmup:
            self.t0 = time.perf_counter()
        self.t1 = time.perf_counter()


def lightning_rate(root: Path, out: Path, steps: int, warmup: int, batch: int, crop: int, workers: int) -> float:
    overrides = [
        "data=folder", f"data.root={root}", f"data.batch_size={batch}", f"data.crop_size={crop}",
        f"data.num_workers={workers}", f"+trainer.max_steps={steps + warmup}", "+trainer.limit_val_batches=0",
        "trainer.max_epochs=1000", "model.freeze_epochs=0", "~callbacks.progress_bar", "~callbacks.early_stopping",
        "~callbacks.model_checkpoint",
    ]
    cfg = compose("train", overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.callbacks.timer = {"_target_": f"{__name__}.StepTimer", "warmup": warmup}
    HydraConfig().set_config(cfg)
    train(cfg)
    t = StepTimer.last
    return (t.n - t.warmup) * batch / (t.t1 - t.t0)


def bare_rate(root: Path, steps: int, warmup: int, batch: int, crop: int) -> float:
    from pcbseg.data.datamodule import PCBDataModule
    from pcbseg.models.module import SegmentationModule

    model = SegmentationModule(num_classes=7, freeze_epochs=0)
    dm = PCBDataModule(root, batch_size=batch, crop_size=crop)
    dm.prepare_data()
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    batches = [next(it) for _ in range(4)]  # in memory: the loop below measures the model alone
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for i in range(steps + warmup):
        if i == warmup:
            t0 = time.perf_counter()
        b = batches[i % len(batches)]
        loss = model.loss_fn(model(b["image"]), b["mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--root", type=Path, default=None, help="dataset; default: generate 64 synthetic boards")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    root = args.root
    if root is None:
        from pcbseg.data.synth import write_dataset

        root = write_dataset(tmp / "synth", num_boards=64, size=320)
    (tmp / "run").mkdir()
    bare = bare_rate(root, args.steps, args.warmup, args.batch, args.crop)
    light = lightning_rate(root, tmp / "run", args.steps, args.warmup, args.batch, args.crop, args.workers)
    shutil.rmtree(tmp)
    overhead = (bare / light - 1) * 100
    body = (
        f"Unet + EfficientNet-Lite0 (channels_last, encoder unfrozen), batch {args.batch}, {args.crop}² crops, "
        f"{args.steps} timed steps after {args.warmup} warm-up steps, data.num_workers={args.workers}.\n\n"
        "| loop | images/s |\n|---|---|\n"
        f"| bare PyTorch, batches in memory | {bare:.2f} |\n"
        f"| `pcbseg-train` (Lightning, metrics, logging, PNG decode + augmentation) | {light:.2f} |\n\n"
        f"Cost of Lightning plus the data pipeline: **{overhead:+.1f}%** time per image (target: under 10%)."
    )
    write_section("train-throughput", "Training throughput: pcbseg-train against a bare PyTorch loop", body)


if __name__ == "__main__":
    main()
