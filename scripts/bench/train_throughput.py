"""Training images/s: pcbseg-train (Lightning + data pipeline) against a bare PyTorch loop.

Both run the same model (smp Unet + EfficientNet-Lite0, channels_last, encoder unfrozen), batch
size, crop size, loss and optimiser on the same threads, one after the other in this process, in
float32 and in bfloat16 autocast (where the CPU has it natively). The bare loop trains on batches
already in memory, so the gap is everything pcbseg adds: Lightning's loop, logging, metrics, and
reading (cached after the first epoch) and augmenting images.

With ``--repeats N`` the runs interleave, bare, pcbseg, bare, pcbseg, ..., bare, and each pcbseg run is
compared with the mean of the bare runs just before and after it. This machine's speed drifts by
about 10% between minutes, so the cost is reported as the median of those N paired ratios, with their range.

    python scripts/bench/train_throughput.py [--steps 30] [--batch 8] [--crop 224] [--workers 0,2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
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


def lightning_rate(root: Path, out: Path, steps: int, warmup: int, batch: int, crop: int, workers: int,
                   precision: str, extra: list[str]) -> float:
    overrides = [
        "data=folder", f"data.root={root}", f"data.batch_size={batch}", f"data.crop_size={crop}",
        f"trainer.precision={precision}",
        f"data.num_workers={workers}", f"+trainer.max_steps={steps + warmup}", "+trainer.limit_val_batches=0",
        "trainer.max_epochs=1000", "model.freeze_epochs=0", "~callbacks.progress_bar", "~callbacks.early_stopping",
        "~callbacks.model_checkpoint", *extra,
    ]
    cfg = compose("train", overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.callbacks.timer = {"_target_": f"{__name__}.StepTimer", "warmup": warmup}
    HydraConfig().set_config(cfg)
    train(cfg)
    t = StepTimer.last
    return (t.n - t.warmup) * batch / (t.t1 - t.t0)


def bare_rate(root: Path, steps: int, warmup: int, batch: int, crop: int, bf16: bool) -> float:
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
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss_fn(model(b["image"]), b["mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    from pcbseg.hardware import cpu_has_bf16

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first; default: one epoch, so the cache is warm")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--workers", default="0,2", help="data.num_workers values to time, comma-separated")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved bare/pcbseg pairs per precision")
    ap.add_argument("--boards", type=int, default=64, help="synthetic boards to generate when no --root is given")
    ap.add_argument("--overrides", default="", help="more Hydra overrides for the pcbseg-train runs, space-separated")
    ap.add_argument("--root", type=Path, default=None, help="dataset; default: generate --boards synthetic boards")
    args = ap.parse_args()
    if args.repeats < 1 or args.boards < 16:
        ap.error(f"--repeats must be at least 1 and --boards at least 16 (got {args.repeats}, {args.boards})")
    tmp = Path(tempfile.mkdtemp())
    root = args.root
    if root is None:
        from pcbseg.data.synth import write_dataset

        root = write_dataset(tmp / "synth", num_boards=args.boards, size=320)
    workers = [int(w) for w in args.workers.split(",")]
    extra = args.overrides.split()
    # warm up for one epoch plus a step (64 boards at 80% train is 51 images: 6 batches), so the image cache is full
    from pcbseg.data.splits import read_splits

    train_images = sum(r.split == "train" for r in read_splits(root / "splits.csv"))
    warmup = args.warmup if args.warmup is not None else train_images // args.batch + 1  # drop_last
    precisions = [("float32", "32-true", False)] + ([("bf16", "bf16-mixed", True)] if cpu_has_bf16() else [])
    # rates[key][precision]: one rate per repeat; costs[key][precision]: each run against its neighbouring bare runs
    rates: dict[str, dict[str, list[float]]] = {"bare": {}}
    costs: dict[str, dict[str, list[float]]] = {}
    for name, precision, bf16 in precisions:
        bares = [bare_rate(root, args.steps, warmup, args.batch, args.crop, bf16)]
        runs: dict[int, list[float]] = {w: [] for w in workers}
        for r in range(args.repeats):
            for w in workers:
                run = tmp / f"run-{name}-{w}-{r}"
                run.mkdir()
                runs[w].append(lightning_rate(root, run, args.steps, warmup, args.batch, args.crop, w, precision,
                                              extra))
            bares.append(bare_rate(root, args.steps, warmup, args.batch, args.crop, bf16))
        rates["bare"][name] = bares
        for w in workers:
            rates.setdefault(f"w{w}", {})[name] = runs[w]
            costs.setdefault(f"w{w}", {})[name] = [(bares[r] + bares[r + 1]) / 2 / rate - 1
                                                    for r, rate in enumerate(runs[w])]
    shutil.rmtree(tmp)
    names = [n for n, *_ in precisions]
    head = "| loop | " + " | ".join(f"images/s {n} | cost vs bare {n}" for n in names) + " |\n"
    head += "|---|" + "---|---|" * len(names) + "\n"
    lines = []
    bare_label = ("bare PyTorch, batches in memory (mean of the runs before and after)" if args.repeats == 1 else
                  f"bare PyTorch, batches in memory (mean of {args.repeats + 1} runs)")
    for key, label in [("bare", bare_label), *[(f"w{w}", f"`pcbseg-train`, data.num_workers={w}") for w in workers]]:
        cells = []
        for n in names:
            cell = f"{statistics.mean(rates[key][n]):.2f} | "
            if key != "bare":
                c = costs[key][n]
                cell += f"{statistics.median(c) * 100:+.1f}%" + (
                    f" (median; {min(c) * 100:+.1f}% to {max(c) * 100:+.1f}%)" if len(c) > 1 else "")
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    body = (
        f"Unet + EfficientNet-Lite0 (channels_last, encoder unfrozen), batch {args.batch}, {args.crop}² crops, "
        f"{args.steps} timed steps after {warmup} untimed ones (the first epoch fills the image cache), "
        f"{args.repeats} interleaved repeat(s), {train_images} training images "
        f"({train_images // args.batch} batches an epoch)" + (f", pcbseg-train with `{args.overrides}`" if extra else "")
        + ". "
        "bf16 is `torch.autocast('cpu', bfloat16)` in the bare loop and `trainer.precision=bf16-mixed` in "
        "pcbseg-train. Cost is extra time per image over the bare loop at the same precision, each pcbseg run "
        "against the bare runs just before and after it (target: at most +5%).\n\n" + head + "\n".join(lines)
    )
    write_section("train-throughput", "Training throughput: pcbseg-train against a bare PyTorch loop", body)


if __name__ == "__main__":
    main()
