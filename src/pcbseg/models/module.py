"""``SegmentationModule``: any smp architecture with any smp/timm encoder, fine-tuned fast.ai-style.

The module owns everything a checkpoint needs to be used on its own: its classes and their
colours, the input normalisation of its encoder's weights (applied inside ``forward``, which takes
RGB in [0, 1]), its preferred prediction tiles, and the fine-tuning recipe. The optimiser holds two
parameter groups from the start, the decoder+head at ``lr`` and the encoder at
``lr / encoder_lr_div`` (discriminative learning rates). For the first ``freeze_epochs`` worth of
optimiser steps the encoder is frozen (weights and BatchNorm statistics) and the schedule runs one
warm-up+anneal cycle for the head alone; then a second cycle runs over the remaining steps for both
groups, as fast.ai's ``fine_tune`` does. Both are decided from the step count, so they hold for
runs set in epochs or in steps, and for resumed runs.

Example:
    >>> import torch
    >>> m = SegmentationModule(arch="fpn", encoder="tu-tf_efficientnet_lite0", weights=None, num_classes=3)
    >>> m(torch.rand(1, 3, 64, 64)).shape
    torch.Size([1, 3, 64, 64])
    >>> m.predict(np.zeros((50, 70, 3), np.uint8)).shape
    (50, 70)
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import segmentation_models_pytorch as smp
import torch
from lightning.pytorch.callbacks import Timer
from torch import nn

from pcbseg.hardware import inference_dtype
from pcbseg.inference import Prediction, TiledPredictor, predict_scale
from pcbseg.metrics import SegmentationMetrics
from pcbseg.models.losses import CombinedLoss
from pcbseg.models.weights import apply_weights, normalization, resolve_weights
from pcbseg.taxonomy import Taxonomy, taxonomy_from_names

ARCHITECTURES = {
    "unet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "fpn": "FPN",
    "deeplabv3plus": "DeepLabV3Plus",
    "segformer": "Segformer",
}
SCHEDULES = ("onecycle", "cosine", "constant")
NO_LENGTH = ("the learning-rate schedule needs a length: set trainer.max_epochs, trainer.max_steps or "
             "trainer.max_time (a time budget, e.g. 00:00:10:00)")
BUDGET_STEPS = 10_000  # resolution of a time-budget schedule
# Of prediction and scoring (pcbseg-eval, pcbseg-predict, the training summary): bfloat16 where the
# device computes it natively. On CPU it moved holdout mIoU by at most 0.0009 on the synthetic,
# resistor and registered-photo sets (docs/benchmarks.md, eval_precision); "32" forces float32.
DEFAULT_PRECISION = "auto"
log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting is out of range or unknown; the message names it and says what it accepts."""


def schedule_factor(step: int, total: int, kind: str = "onecycle", warmup_pct: float = 0.25) -> float:
    """Learning-rate multiplier at ``step`` of a ``total``-step cycle: warm up, then cosine down.

    ``onecycle`` warms from 1/25 with a cosine ramp and anneals to 1e-5 (fast.ai's
    ``fit_one_cycle``); ``cosine`` warms linearly from 0 and anneals to 0; ``constant`` is 1.
    """
    if kind == "constant" or total <= 0:
        return 1.0
    warm = max(1, int(total * warmup_pct))
    if kind == "onecycle":
        if step < warm:
            return 1 / 25 + (1 - 1 / 25) * (1 - math.cos(math.pi * step / warm)) / 2
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 1e-5 + (1 - 1e-5) * (1 + math.cos(math.pi * t)) / 2
    if kind == "cosine":
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return (1 + math.cos(math.pi * t)) / 2
    raise ConfigError(f"model.schedule={kind!r} is unknown: choose onecycle, cosine or constant")


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, for RGB in [0, 1]; kept out of the state dict (the hparams hold it)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _check(name: str, ok: bool, value: Any, want: str) -> None:
    if not ok:
        raise ConfigError(f"model.{name}={value!r} is invalid: it must be {want}")


class SegmentationModule(L.LightningModule):
    """Semantic segmentation of board photos.

    Args:
        arch: one of ``unet, unetplusplus, fpn, deeplabv3plus, segformer`` (or any smp arch name).
        encoder: smp/timm encoder name; the default has ImageNet weights that ship offline.
        weights: ``"imagenet"``, a path to a weights file, or ``None`` (from scratch).
        num_classes, class_names, ignore_index: from the dataset's ``classes.yaml``.
        class_colours: display colour of each class, RGB 0..255 (built-in colours by name if not given).
        mean, std: input normalisation, RGB in [0, 1] units; default: what the encoder's weights expect.
        loss: weights of ``ce``, ``dice``, ``focal``, ``lovasz`` in the summed loss.
        class_weights: per-class weights for cross-entropy, or ``"frequency"``: median-frequency
            balancing from the train split's pixel counts (rare classes such as via and hole weigh
            more; clipped to [0.1, 10]), computed when training starts and kept in the checkpoint.
        head_bias: ``"prior"`` sets the bias of the last layer to the log of each class's share of the
            train split's pixels when training starts, so the untrained model predicts the class mix of
            the data (the majority class everywhere) instead of noise; ``None`` keeps the random start.
            Weights loaded from a checkpoint (``init_from``, a resumed run) replace it. The configs
            (``conf/model/*.yaml``) choose ``"prior"``; here the default stays ``None``, since it needs a
            datamodule with ``class_pixel_counts()``.
        lr: peak learning rate of the decoder and head; the encoder gets ``lr / encoder_lr_div``.
        schedule: ``onecycle``, ``cosine`` or ``constant``; ``warmup_pct`` of each cycle warms up.
        freeze_epochs: epochs (fractions allowed) with the encoder, BatchNorm included, frozen
            before fine-tuning it; counted in optimiser steps, so it also holds for ``max_steps`` runs.
        freeze_pct: if set, the frozen phase is this share of the run's optimiser steps instead
            (short runs: one frozen epoch out of three is a third of the budget).
        channels_last: NHWC memory format, markedly faster on CPU for these convnets.
        tile, overlap: the sliding-window tiles :meth:`predict` uses unless told otherwise.
        input_scale: the factor images were resized by in training (``data.scale``); prediction
            resizes by it too and returns masks at the image's own size.
        input_px_per_mm: the pixels per mm of board the network saw in training (``data.px_per_mm``
            times ``data.scale``), if the dataset's px/mm was given; lets prediction take a photo's px/mm.
        input_scale_jitter: the random zoom range of training (``data.scale_jitter``); prediction
            warns about photos far outside it.
        arch_kwargs: passed to the smp architecture (e.g. ``decoder_channels``).
    """

    def __init__(
        self,
        arch: str = "unet",
        encoder: str = "tu-tf_efficientnet_lite0",
        weights: str | None = "imagenet",
        num_classes: int = 7,
        class_names: Sequence[str] | None = None,
        ignore_index: int = 255,
        class_colours: Sequence[Sequence[int]] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        loss: Mapping[str, float] | None = None,
        class_weights: Sequence[float] | str | None = None,
        head_bias: str | None = None,
        lr: float = 2e-3,
        encoder_lr_div: float = 10.0,
        weight_decay: float = 1e-4,
        schedule: str = "onecycle",
        warmup_pct: float = 0.25,
        freeze_epochs: float = 1,
        freeze_pct: float | None = None,
        channels_last: bool = True,
        tile: int = 512,
        overlap: int = 128,
        input_scale: float = 1.0,
        input_px_per_mm: float | None = None,
        input_scale_jitter: Sequence[float] | None = None,
        arch_kwargs: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        _check("num_classes", isinstance(num_classes, int) and num_classes >= 1, num_classes, "a whole number >= 1")
        _check("lr", _number(lr) and lr > 0, lr, "a positive number, e.g. 3e-3")
        _check("encoder_lr_div", _number(encoder_lr_div) and encoder_lr_div > 0, encoder_lr_div, "a positive number")
        _check("weight_decay", _number(weight_decay) and weight_decay >= 0, weight_decay, "a number >= 0")
        _check("warmup_pct", _number(warmup_pct) and 0 <= warmup_pct < 1, warmup_pct, "in [0, 1)")
        _check("freeze_epochs", _number(freeze_epochs) and freeze_epochs >= 0, freeze_epochs, "a number >= 0")
        _check("freeze_pct", freeze_pct is None or (_number(freeze_pct) and 0 <= freeze_pct < 1), freeze_pct,
               "null or in [0, 1)")
        _check("schedule", schedule in SCHEDULES, schedule, f"one of {', '.join(SCHEDULES)}")
        _check("tile", isinstance(tile, int) and tile >= 32 and tile % 32 == 0, tile, "a multiple of 32")
        _check("overlap", isinstance(overlap, int) and 0 <= overlap < tile, overlap, f"in [0, tile={tile})")
        _check("input_scale", _number(input_scale) and 0.05 <= input_scale <= 8, input_scale, "in [0.05, 8]")
        _check("input_px_per_mm", input_px_per_mm is None or (_number(input_px_per_mm) and input_px_per_mm > 0),
               input_px_per_mm, "null or a positive number")
        _check("input_scale_jitter", input_scale_jitter is None or (
            len(input_scale_jitter) == 2 and all(_number(v) and v > 0 for v in input_scale_jitter)),
            input_scale_jitter, "null or [low, high]")
        smp_arch = ARCHITECTURES.get(arch, arch)
        _check("arch", hasattr(smp, smp_arch), arch, f"one of {', '.join(ARCHITECTURES)} (or an smp class name)")
        class_names = list(class_names) if class_names else [f"class_{i}" for i in range(num_classes)]
        _check("class_names", len(class_names) == num_classes, class_names, f"{num_classes} names")
        taxonomy = taxonomy_from_names(class_names, name="model", ignore_index=ignore_index)
        colours = [list(map(int, c)) for c in class_colours] if class_colours else [list(c) for c in taxonomy.colors]
        _check("class_colours", len(colours) == num_classes, class_colours, f"{num_classes} [r, g, b] colours")
        default_mean, default_std = normalization(encoder)
        mean, std = list(mean or default_mean), list(std or default_std)
        _check("mean", len(mean) == 3, mean, "three numbers (RGB)")
        _check("std", len(std) == 3 and all(v > 0 for v in std), std, "three positive numbers (RGB)")
        loss = dict(loss) if loss else {"ce": 1.0, "dice": 1.0}
        by_frequency = class_weights == "frequency"
        _check("class_weights", class_weights is None or by_frequency or (
            not isinstance(class_weights, str) and len(class_weights) == num_classes
            and all(_number(w) and w >= 0 for w in class_weights)), class_weights,
            f"null, 'frequency' or {num_classes} numbers >= 0")
        _check("class_weights", not (class_weights and not float(loss.get("ce", 0))), class_weights,
               "null while model.loss.ce is 0: class weights apply to the cross-entropy term")
        _check("head_bias", head_bias in (None, "prior"), head_bias, "null or 'prior'")
        self.save_hyperparameters({
            "arch": arch, "encoder": encoder, "weights": weights, "num_classes": num_classes,
            "class_names": class_names, "ignore_index": ignore_index, "class_colours": colours, "mean": mean,
            "std": std, "loss": loss,
            "class_weights": class_weights if by_frequency or not class_weights else list(class_weights),
            "head_bias": head_bias, "lr": lr,
            "encoder_lr_div": encoder_lr_div, "weight_decay": weight_decay, "schedule": schedule,
            "warmup_pct": warmup_pct, "freeze_epochs": freeze_epochs, "freeze_pct": freeze_pct,
            "channels_last": channels_last,
            "tile": tile, "overlap": overlap, "input_scale": float(input_scale),
            "input_px_per_mm": float(input_px_per_mm) if input_px_per_mm is not None else None,
            "input_scale_jitter": [float(v) for v in input_scale_jitter] if input_scale_jitter else None,
            "arch_kwargs": dict(arch_kwargs or {}),
        })
        smp_weights, state, info = resolve_weights(encoder, weights)
        try:
            self.model = smp.create_model(smp_arch, encoder_name=encoder, encoder_weights=smp_weights,
                                          classes=num_classes, **dict(arch_kwargs or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"model.arch={arch!r} with model.encoder={encoder!r} and arch_kwargs "
                              f"{dict(arch_kwargs or {})} cannot be built: {e}") from None
        apply_weights(self.model.encoder, encoder, state, info)
        self.weights_source = info.source
        self.normalize = Normalize(mean, std)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # With "frequency" the weights are known only once the data is: a placeholder keeps the state dict's shape.
        self.loss_fn = CombinedLoss(loss, ignore_index, [1.0] * num_classes if by_frequency else class_weights)
        self.class_weights_used: list[float] | None = None if by_frequency else self.hparams.class_weights
        # cleared once the head holds trained weights (init_from), which the prior must not replace
        self.head_prior_pending = head_bias == "prior"
        self.train_metrics = SegmentationMetrics(class_names, ignore_index)
        self.val_metrics = SegmentationMetrics(class_names, ignore_index)
        self.test_metrics = SegmentationMetrics(class_names, ignore_index)
        self.last_results: dict[str, dict] = {}
        self.frozen_steps = 0  # set when the optimiser is configured
        self._budget_s: float | None = None
        self._timer: Timer | None = None
        self._total_steps: float = math.inf
        self._thaw: tuple[int, float] | None = None  # (step, progress) where the encoder was unfrozen
        self._progress_cache, self._last_tick, self._step_s = (-1, 0.0), None, None
        self._restored_rng: dict | None = None

    # what a checkpoint knows ----------------------------------------------------------------
    @property
    def encoder(self) -> torch.nn.Module:
        return self.model.encoder

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.hparams.mean)

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.hparams.std)

    @property
    def taxonomy(self) -> Taxonomy:
        """The classes, their display colours and the ignore index, as trained."""
        hp = self.hparams
        return Taxonomy(name="model", names=tuple(hp.class_names), colors=tuple(tuple(c) for c in hp.class_colours),
                        ignore_index=hp.ignore_index)

    # inference ------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C, H, W) for RGB images in [0, 1] (N, 3, H, W); H and W multiples of 32."""
        x = self.normalize(x)
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def predictor(self, tile: int | None = None, overlap: int | None = None, precision: str = DEFAULT_PRECISION,
                  scale: float | None = None, px_per_mm: float | None = None, **kwargs: Any) -> TiledPredictor:
        """A :class:`~pcbseg.inference.TiledPredictor` over this model with its preferred tiles and input scale.

        ``precision``: ``auto`` (bfloat16 where the device computes it natively), ``bf16`` or ``32``.
        ``scale``: resize images by this before predicting (default: the ``data.scale`` it was trained at).
        ``px_per_mm``: or the photos' pixels per mm, brought to the px/mm the model was trained at (see
        :func:`~pcbseg.inference.predict_scale`; a photo far outside the trained zooms is logged as a warning).
        """
        device = kwargs.pop("device", None) or next(self.parameters()).device
        hp = self.hparams
        scale, warning = predict_scale(hp.get("input_scale", 1.0), hp.get("input_px_per_mm"),
                                       hp.get("input_scale_jitter"), scale, px_per_mm)
        if warning:
            log.warning("%s", warning)
        return TiledPredictor(self, self.hparams.num_classes, tile=tile or self.hparams.tile,
                              overlap=self.hparams.overlap if overlap is None else overlap, device=device,
                              dtype=inference_dtype(precision, str(device)), scale=scale, **kwargs)

    @torch.no_grad()
    def predict(self, image: np.ndarray | str | Path, return_probs: bool = False, **tiling: Any) -> Any:
        """Class mask (H x W uint8) of an RGB uint8 image or an image file, predicted tile by tile.

        ``tiling``: ``tile``, ``overlap``, ``batch_size``, ``blend``, ``tta``, ``device``, ``precision``, ``scale``,
        ``px_per_mm`` (see :meth:`predictor`). With ``return_probs=True`` the result is a
        :class:`~pcbseg.inference.Prediction` holding ``mask`` and ``probs`` (C x H x W).
        """
        if isinstance(image, (str, Path)):
            from pcbseg.data.layout import read_image  # files only here: the module itself needs no dataset code

            image = read_image(Path(image))
        was_training = self.training
        self.eval()
        try:
            out: Prediction = self.predictor(**tiling).predict(np.asarray(image), return_probs=return_probs)
        finally:
            self.train(was_training)
        return out if return_probs else out.mask

    def predict_step(self, batch: dict | torch.Tensor, batch_idx: int = 0) -> dict:
        """For ``trainer.predict``: the class mask of each image in a batch (as the datamodules make them)."""
        images = batch["image"] if isinstance(batch, dict) else batch
        logits = self(images)
        out = {"mask": logits.argmax(1).to(torch.uint8)}
        if isinstance(batch, dict) and "id" in batch:
            out["id"] = batch["id"]
        return out

    # training -------------------------------------------------------------------------------
    def _metrics(self, stage: str) -> SegmentationMetrics:
        return getattr(self, f"{stage}_metrics")

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.loss_fn(logits, batch["mask"])
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{stage} loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step}: stopping "
                f"before a broken checkpoint is written. Try a lower model.lr (now {self.hparams.lr}) or check the data."
            )
        if stage == "train":
            # Train scores only show progress: every 2nd row and column estimates them at a quarter of the argmax
            # cost, which is ~2% of a CPU step in full (docs/benchmarks.md, train-throughput).
            self.train_metrics.update(logits.detach()[..., ::2, ::2].argmax(1), batch["mask"][..., ::2, ::2])
        else:
            self._metrics(stage).update(logits.detach().argmax(1), batch["mask"])
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, prog_bar=True,
                 batch_size=batch["image"].shape[0], sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "test")

    def _epoch_end(self, stage: str) -> None:
        results = self._metrics(stage).compute()  # torchmetrics syncs across DDP ranks here
        self._metrics(stage).reset()
        self.last_results[stage] = results
        # The values are already global (the confusion matrix was synced); sync_dist only averages equal numbers.
        self.log(f"{stage}/mIoU", results["mIoU"], prog_bar=stage == "val", sync_dist=True)
        logged = {f"{stage}/pixel_error_rate": results["pixel_error_rate"], f"{stage}/dice": results["dice"]}
        logged.update({f"{stage}/iou_{name}": v for name, v in results["per_class_iou"].items() if not math.isnan(v)})
        self.log_dict(logged, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        self._epoch_end("train")

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    # fine-tuning: frozen encoder first, then all of it ---------------------------------------
    @property
    def encoder_frozen(self) -> bool:
        return self._frozen_at(self.global_step)

    def _frozen_at(self, step: int) -> bool:
        if self._budget_s is None or self.hparams.get("freeze_pct") is None:
            frozen = step < self.frozen_steps
        else:  # a time budget: the frozen phase is a share of it
            frozen = self._thaw is None and self._progress(step) < self.hparams.freeze_pct
        if not frozen and self._thaw is None:
            self._thaw = (step, self._progress(step) if self._budget_s is not None else 0.0)
        return frozen

    # a time budget (trainer.max_time): the schedule follows the clock --------------------------
    def _time_budget(self) -> tuple[float | None, Timer | None]:
        """Seconds of ``trainer.max_time`` (Lightning's Timer callback) and the timer, or ``(None, None)``."""
        if self._trainer is None:
            return None, None
        for cb in self.trainer.callbacks:
            if isinstance(cb, Timer) and cb._duration is not None:
                return float(cb._duration), cb
        return None, None

    def _progress(self, step: int) -> float:
        """Share of the run done when step ``step`` ends: the larger of steps/total and time/budget.

        The time share counts the step about to run (its duration estimated from the steps so far),
        because Lightning stops after the first step that ends past the budget: so the last step
        runs at the schedule's end, not short of it. Under DDP rank 0's clock decides for all ranks.
        """
        if self._progress_cache[0] == step:
            return self._progress_cache[1]
        now = self._timer.time_elapsed() if self._timer is not None else 0.0
        if self._last_tick is not None and step > self._last_tick[0]:
            took = (now - self._last_tick[1]) / (step - self._last_tick[0])
            self._step_s = took if self._step_s is None else 0.8 * self._step_s + 0.2 * took
        self._last_tick = (step, now)
        by_time = (now + (self._step_s or 0.0)) / self._budget_s
        by_steps = step / self._total_steps if math.isfinite(self._total_steps) else 0.0
        p = min(1.0, max(by_time, by_steps))
        if self._trainer is not None and self.trainer.world_size > 1:
            p = float(self.trainer.strategy.broadcast(p))
        self._progress_cache = (step, p)
        return p

    def _budget_factors(self) -> tuple[Any, Any]:
        """LR multipliers of (head, encoder) by step under a time budget: the same two cycles, in shares of it."""
        hp = self.hparams
        pct = hp.get("freeze_pct")

        def head(step: int) -> float:
            p = self._progress(step)
            if self._frozen_at(step):
                q = p / pct if pct is not None else step / max(1, self.frozen_steps)
            else:
                p0 = self._thaw[1] if self._thaw[0] > 0 else 0.0
                q = (p - p0) / max(1e-9, 1.0 - p0)
            return schedule_factor(round(min(1.0, q) * BUDGET_STEPS), BUDGET_STEPS, hp.schedule, hp.warmup_pct)

        def encoder(step: int) -> float:
            return 0.0 if self._frozen_at(step) else head(step)

        return head, encoder

    def _apply_freeze(self) -> None:
        frozen = self.encoder_frozen
        # One process: frozen weights need no gradient at all (faster). Under DDP the set of
        # parameters with gradients must not change after wrapping, so gradients are dropped instead.
        if self._trainer is None or self.trainer.world_size == 1:
            for p in self.encoder.parameters():
                p.requires_grad_(not frozen)
        # Frozen BatchNorm keeps its pretrained statistics; set every batch, since validation and
        # Lightning restore module modes of their own.
        for m in self.encoder.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train(not frozen)

    def setup(self, stage: str) -> None:
        by_frequency = self.hparams.get("class_weights") == "frequency" and self.class_weights_used is None
        if stage != "fit" or not (by_frequency or self.head_prior_pending):
            return
        counts_of = getattr(self.trainer.datamodule, "class_pixel_counts", None)
        if counts_of is None:
            raise ConfigError("model.class_weights='frequency' and model.head_bias='prior' need a datamodule with "
                              "class_pixel_counts() (PCBDataModule has it)")
        counts = counts_of()
        if by_frequency:
            self.class_weights_used = frequency_weights(counts)
            shown = {n: round(w, 3) for n, w in zip(self.hparams.class_names, self.class_weights_used, strict=True)}
            log.info("Class weights from pixel frequency: %s", shown)
            self.loss_fn.set_class_weights(self.class_weights_used)
        if self.head_prior_pending:
            # A resumed run loads its trained head after setup, so this start is replaced there.
            bias = prior_bias(counts)
            with torch.no_grad():
                _head_conv(self.model, self.hparams.num_classes).bias.copy_(torch.tensor(bias))
            self.head_prior_pending = False
            log.info("Head bias from the class mix of the train split: %s",
                     {n: round(b, 2) for n, b in zip(self.hparams.class_names, bias, strict=True)})

    def on_train_start(self) -> None:
        self._restore_rng()
        if self._budget_s is not None:
            log.info("Time budget %.0f s: the learning-rate schedule follows the clock; encoder frozen for %s",
                     self._budget_s, f"{self.hparams.freeze_pct:.0%} of it" if self.hparams.get("freeze_pct") is not None
                     else f"the first {self.frozen_steps} optimiser steps")
        elif self.frozen_steps:
            log.info("Encoder frozen for the first %d of %d optimiser steps", self.frozen_steps, self._steps()[0])

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._apply_freeze()

    def on_after_backward(self) -> None:
        if self.encoder_frozen:
            for p in self.encoder.parameters():
                p.grad = None

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        head = [p for p in self.parameters() if id(p) not in encoder_ids]
        groups = [
            {"params": head, "lr": hp.lr, "name": "head"},
            {"params": list(self.encoder.parameters()), "lr": hp.lr / hp.encoder_lr_div, "name": "encoder"},
        ]
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        self._budget_s, self._timer = self._time_budget()
        total, per_epoch = self._steps()
        self._total_steps = total
        self._progress_cache, self._last_tick, self._step_s = (-1, 0.0), None, None
        wanted = hp.get("freeze_pct")
        if self._budget_s is not None:
            self.frozen_steps = 0 if wanted is not None else min(total, round(hp.freeze_epochs * per_epoch))
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, list(self._budget_factors()))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        frozen = self.frozen_steps = min(total, round(wanted * total if wanted is not None else hp.freeze_epochs * per_epoch))

        def head_factor(step: int) -> float:
            if step < frozen:
                return schedule_factor(step, frozen, hp.schedule, hp.warmup_pct)
            return schedule_factor(step - frozen, total - frozen, hp.schedule, hp.warmup_pct)

        def encoder_factor(step: int) -> float:
            return 0.0 if step < frozen else head_factor(step)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [head_factor, encoder_factor])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _steps(self) -> tuple[int, float]:
        """(optimiser steps in the whole run, optimiser steps per epoch), from the trainer's settings."""
        if self._trainer is None:
            return 1000, 100.0
        trainer = self.trainer
        accumulate = max(1, trainer.accumulate_grad_batches)
        if trainer.train_dataloader is None and trainer.datamodule is not None and trainer.world_size == 1:
            # Counted on a loader of our own: Lightning's estimate would make its loader (and draw its
            # first batches) now, before a resumed run has restored its epoch.
            batches = _limited(len(trainer.datamodule.train_dataloader()), trainer.limit_train_batches)
            per_epoch = math.ceil(batches / accumulate)
            total = per_epoch * trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else math.inf
            if trainer.max_steps and trainer.max_steps > 0:
                total = min(total, trainer.max_steps)
            if not math.isfinite(total):
                if self._budget_s is None:
                    raise ConfigError(NO_LENGTH)
                return total, float(per_epoch)
            return int(total), float(per_epoch)
        total = trainer.estimated_stepping_batches  # honours max_steps, max_epochs and limit_train_batches
        if not math.isfinite(total) and self._budget_s is None:
            raise ConfigError(NO_LENGTH)
        if trainer.train_dataloader is None:  # max_steps runs: Lightning has not loaded it yet
            trainer.fit_loop.setup_data()
        batches = trainer.num_training_batches
        if not math.isfinite(batches) or batches <= 0:
            epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
            return _count(total), total / epochs
        return _count(total), float(math.ceil(batches / accumulate))

    # exact resume: the global RNGs travel with the checkpoint ---------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        np_state = np.random.get_state()
        checkpoint["pcbseg_rng"] = {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": random.getstate(),
        }
        checkpoint["pcbseg_thaw"] = list(self._thaw) if self._thaw is not None else None
        checkpoint["pcbseg_class_weights"] = self.class_weights_used

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._restored_rng = checkpoint.get("pcbseg_rng")
        if checkpoint.get("pcbseg_class_weights") is not None:  # a resumed run keeps the weights it started with
            self.class_weights_used = list(checkpoint["pcbseg_class_weights"])
        thaw = checkpoint.get("pcbseg_thaw")
        self._thaw = (int(thaw[0]), float(thaw[1])) if thaw else None

    def _restore_rng(self) -> None:
        """Put back the generators' state saved with the checkpoint this run resumed from.

        Called when training starts, not on load: the sanity check in between draws from them.
        """
        state, self._restored_rng = self._restored_rng, None
        if state:
            torch.set_rng_state(state["torch"])
            name, keys, pos, has_gauss, gauss = state["numpy"]
            np.random.set_state((name, np.asarray(keys, np.uint32), pos, has_gauss, gauss))
            random.setstate(_as_tuples(state["python"]))


def frequency_weights(pixel_counts: Sequence[int], low: float = 0.1, high: float = 10.0) -> list[float]:
    """Median-frequency balancing (Eigen & Fergus): median frequency / class frequency, clipped.

    Classes with no pixel get weight 1 (nothing to balance). Example: counts [900, 90, 10] give
    [0.1, 1.0, 9.0].
    """
    counts = np.asarray(pixel_counts, dtype=np.float64)
    present = counts > 0
    if not present.any():
        return [1.0] * len(counts)
    freq = counts / counts.sum()
    median = float(np.median(freq[present]))
    return [float(np.clip(median / f, low, high)) if f > 0 else 1.0 for f in freq]


def prior_bias(pixel_counts: Sequence[int], floor: float = 1e-4) -> list[float]:
    """Logits whose softmax is the classes' pixel shares (each at least ``floor``), centred on 0.

    Example: counts [600, 300, 100] give a softmax of [0.6, 0.3, 0.1].
    """
    counts = np.asarray(pixel_counts, dtype=np.float64)
    share = np.maximum(counts / max(counts.sum(), 1.0), floor)
    logits = np.log(share / share.sum())
    return (logits - logits.mean()).tolist()


def _head_conv(model: nn.Module, num_classes: int) -> nn.Conv2d:
    """The last convolution of an smp model's segmentation head: the layer that outputs class logits."""
    head = getattr(model, "segmentation_head", None)
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)] if head is not None else []
    if not convs or convs[-1].out_channels != num_classes or convs[-1].bias is None:
        raise ConfigError(f"model.head_bias='prior' needs an smp segmentation_head ending in a {num_classes}-channel "
                          f"convolution with a bias; {type(model).__name__} has none")
    return convs[-1]


def _count(total: float) -> float:
    return int(total) if math.isfinite(total) else total


def _limited(batches: int, limit: int | float | None) -> int:
    """Batches an epoch runs under ``trainer.limit_train_batches`` (a count, or a fraction of the loader)."""
    if limit is None:
        return batches
    if isinstance(limit, int) and not isinstance(limit, bool) and limit != 1:
        return min(batches, limit)
    return batches if limit == 1 else int(batches * float(limit))


def _as_tuples(x: Any) -> Any:
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
