"""What one training step costs, part by part: the data path, the training scores, and the model.

    python scripts/bench/step_parts.py [--boards 64] [--batch 8] [--crop 224] [--repeats 20]

On the same synthetic set and model as ``train_throughput.py`` (smp Unet + EfficientNet-Lite0,
channels_last, encoder unfrozen), in this process, with the threads torch has:

* data path: one batch from ``pcbseg``'s training loader (``data.num_workers=0``) once its first epoch
  has filled the image cache: read from the cache, crop, light augmentation, collate;
* training scores: the argmax and confusion-matrix update the module makes per training batch, on every
  pixel and on every 2nd row and column (what ``pcbseg-train`` does);
* model step: forward, loss, backward and an AdamW step on one batch held in memory, float32 and, where
  the CPU has native bfloat16, under ``torch.autocast("cpu", bfloat16)``.

Each part is timed ``--repeats`` times; the table gives the median milliseconds per batch. It explains
the per-image gap ``train_throughput.py`` measures; it does not replace it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    from hydra.utils import instantiate

    from pcbseg.config import compose
    from pcbseg.data.synth import write_dataset
    from pcbseg.hardware import cpu_has_bf16
    from pcbseg.models.module import SegmentationModule

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    if args.boards < 16 or args.repeats < 3:
        ap.error(f"--boards must be at least 16 and --repeats at least 3 (got {args.boards}, {args.repeats})")

    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "synth", num_boards=args.boards, size=320)
        cfg = compose("train", ["data=folder", f"data.root={root}", f"data.batch_size={args.batch}",
                                f"data.crop_size={args.crop}", "data.num_workers=0"])
        dm = instantiate(cfg.data, augment=instantiate(cfg.augment), seed=0)  # as pcbseg-train builds it
        dm.prepare_data()
        dm.setup("fit")
        loader = dm.train_dataloader()
        for _ in loader:  # the first epoch decodes every image into the cache
            pass
        batches = iter(loader)

        def next_batch() -> None:
            nonlocal batches
            try:
                next(batches)
            except StopIteration:
                batches = iter(loader)
                next(batches)

        rows = [("data path: cached read, crop, light augmentation, collate", median_ms(next_batch, args.repeats))]

        model = SegmentationModule(num_classes=7, freeze_epochs=0)
        batch = next(iter(loader))
        mask = batch["mask"]
        with torch.no_grad():  # the model's own logits: channels_last like in training (argmax over a
            logits = model(batch["image"])  # contiguous NCHW tensor's channels is ~10x slower on CPU)

        def scores(stride: int) -> None:
            model.train_metrics.update(logits[..., ::stride, ::stride].argmax(1), mask[..., ::stride, ::stride])

        rows.append(("training scores, every pixel", median_ms(lambda: scores(1), args.repeats)))
        rows.append(("training scores, every 2nd row and column (pcbseg-train)", median_ms(lambda: scores(2), args.repeats)))

        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model.train()
        precisions = [("float32", False)] + ([("bfloat16 autocast", True)] if cpu_has_bf16() else [])
        for name, bf16 in precisions:
            def step(bf16: bool = bf16) -> None:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss = model.loss_fn(model(batch["image"]), mask)
                opt.zero_grad()
                loss.backward()
                opt.step()

            for _ in range(3):  # warm up the kernels of this precision
                step()
            rows.append((f"model step ({name}): forward, loss, backward, AdamW", median_ms(step, args.repeats)))

    steps = {name: ms for name, ms in rows if name.startswith("model step")}
    fp32 = steps.get("model step (float32): forward, loss, backward, AdamW")
    lines = ["| part | ms per batch (median) | share of a float32 model step |", "|---|---|---|"]
    lines += [f"| {name} | {ms:.1f} | {ms / fp32:.1%} |" for name, ms in rows]
    body = (f"Batch {args.batch}, {args.crop}² crops of a {args.boards}-board synthetic set, {args.repeats} timings of "
            f"each part. The parts run one after another in one process, so they show where a step's time goes; "
            f"the per-image gap of the whole loop is the train-throughput section's.\n\n" + "\n".join(lines))
    write_section("step-parts", "One training step, part by part", body)


if __name__ == "__main__":
    main()
