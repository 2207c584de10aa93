"""``SegmentationModule``: any smp architecture with any smp/timm encoder, fine-tuned fast.ai-style.

The optimiser holds two parameter groups from the start, the decoder+head at ``lr`` and the
encoder at ``lr / encoder_lr_div`` (discriminative learning rates). For the first
``freeze_epochs`` the encoder is frozen (see :class:`pcbseg.callbacks.FreezeEncoder`) and the
schedule runs one warm-up+anneal cycle over those epochs for the head alone; then a second cycle
runs over the remaining epochs for both groups, as fast.ai's ``fine_tune`` does.

Example:
    >>> import torch
    >>> m = SegmentationModule(arch="fpn", encoder="tu-tf_efficientnet_lite0", weights=None, num_classes=3)
    >>> m(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 3, 64, 64])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import segmentation_models_pytorch as smp
import torch

from pcbseg.metrics import SegmentationMetrics
from pcbseg.models.losses import CombinedLoss
from pcbseg.models.weights import apply_weights, resolve_weights

ARCHITECTURES = {
    "unet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "fpn": "FPN",
    "deeplabv3plus": "DeepLabV3Plus",
    "segformer": "Segformer",
}


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
    raise ValueError(f"unknown schedule {kind!r}: onecycle, cosine or constant")


class SegmentationModule(L.LightningModule):
    """Semantic segmentation of board photos.

    Args:
        arch: one of ``unet, unetplusplus, fpn, deeplabv3plus, segformer`` (or any smp arch name).
        encoder: smp/timm encoder name; the default has ImageNet weights that ship offline.
        weights: ``"imagenet"``, a path to a weights file, or ``None`` (from scratch).
        num_classes, class_names, ignore_index: from the dataset's ``classes.yaml``.
        loss: weights of ``ce``, ``dice``, ``focal``, ``lovasz`` in the summed loss.
        class_weights: per-class weights for cross-entropy.
        lr: peak learning rate of the decoder and head; the encoder gets ``lr / encoder_lr_div``.
        schedule: ``onecycle``, ``cosine`` or ``constant``; ``warmup_pct`` of each cycle warms up.
        freeze_epochs: epochs with the encoder (BatchNorm included) frozen before fine-tuning it.
        channels_last: NHWC memory format, markedly faster on CPU for these convnets.
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
        loss: Mapping[str, float] | None = None,
        class_weights: Sequence[float] | None = None,
        lr: float = 2e-3,
        encoder_lr_div: float = 10.0,
        weight_decay: float = 1e-4,
        schedule: str = "onecycle",
        warmup_pct: float = 0.25,
        freeze_epochs: int = 1,
        channels_last: bool = True,
        arch_kwargs: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        class_names = list(class_names) if class_names else [f"class_{i}" for i in range(num_classes)]
        loss = dict(loss) if loss else {"ce": 1.0, "dice": 1.0}
        self.save_hyperparameters({
            "arch": arch, "encoder": encoder, "weights": weights, "num_classes": num_classes,
            "class_names": class_names, "ignore_index": ignore_index, "loss": loss,
            "class_weights": list(class_weights) if class_weights else None, "lr": lr,
            "encoder_lr_div": encoder_lr_div, "weight_decay": weight_decay, "schedule": schedule,
            "warmup_pct": warmup_pct, "freeze_epochs": freeze_epochs, "channels_last": channels_last,
            "arch_kwargs": dict(arch_kwargs or {}),
        })
        smp_weights, state, info = resolve_weights(encoder, weights)
        self.model = smp.create_model(ARCHITECTURES.get(arch, arch), encoder_name=encoder, encoder_weights=smp_weights,
                                      classes=num_classes, **dict(arch_kwargs or {}))
        apply_weights(self.model.encoder, encoder, state, info)
        self.weights_source = info.source
        self.mean, self.std = tuple(info.mean), tuple(info.std)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = CombinedLoss(loss, ignore_index, class_weights)
        self.train_metrics = SegmentationMetrics(class_names, ignore_index)
        self.val_metrics = SegmentationMetrics(class_names, ignore_index)
        self.test_metrics = SegmentationMetrics(class_names, ignore_index)
        self.last_results: dict[str, dict] = {}

    @property
    def encoder(self) -> torch.nn.Module:
        return self.model.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

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

    # optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self) -> dict:
        hp = self.hparams
        encoder_ids = {id(p) for p in self.encoder.parameters()}
        head = [p for p in self.parameters() if id(p) not in encoder_ids]
        groups = [
            {"params": head, "lr": hp.lr, "name": "head"},
            {"params": list(self.encoder.parameters()), "lr": hp.lr / hp.encoder_lr_div, "name": "encoder"},
        ]
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1000
        epochs = max(1, self.trainer.max_epochs or 1) if self._trainer is not None else 1
        frozen = min(total, round(total * min(hp.freeze_epochs, epochs) / epochs))

        def head_factor(step: int) -> float:
            if step < frozen:
                return schedule_factor(step, frozen, hp.schedule, hp.warmup_pct)
            return schedule_factor(step - frozen, total - frozen, hp.schedule, hp.warmup_pct)

        def encoder_factor(step: int) -> float:
            return 0.0 if step < frozen else head_factor(step)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [head_factor, encoder_factor])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
