"""A weighted sum of segmentation losses, configured by name.

Cross-entropy is PyTorch's (it takes class weights); Dice, Focal and Lovasz are smp's. All honour
``ignore_index``. They are computed in float32 whatever autocast the network ran under: smp's Lovasz
fails on bfloat16 logits, and sums over many pixels lose precision in bfloat16.

Example:
    >>> import torch
    >>> loss = CombinedLoss({"ce": 1.0, "dice": 0.5}, ignore_index=255)
    >>> logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    >>> bool(loss(logits, target) > 0)
    True
    >>> float(loss(logits, torch.full_like(target, 255))) == 0.0   # all ignored: zero, not NaN
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from segmentation_models_pytorch import losses as smp_losses
from torch import nn

LOSSES = ("ce", "dice", "focal", "lovasz")


class CombinedLoss(nn.Module):
    def __init__(self, weights: Mapping[str, float], ignore_index: int = 255,
                 class_weights: Sequence[float] | None = None):
        super().__init__()
        self.ignore_index = ignore_index
        unknown = set(weights) - set(LOSSES)
        if unknown:
            raise ValueError(f"unknown loss(es) {sorted(unknown)}; choose from {LOSSES}")
        self.weights = {k: float(v) for k, v in weights.items() if float(v) != 0.0}
        if not self.weights:
            raise ValueError(f"all loss weights are zero: {dict(weights)}")
        cw = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        build = {
            "ce": lambda: nn.CrossEntropyLoss(weight=cw, ignore_index=ignore_index),
            "dice": lambda: smp_losses.DiceLoss("multiclass", ignore_index=ignore_index),
            "focal": lambda: smp_losses.FocalLoss("multiclass", ignore_index=ignore_index),
            "lovasz": lambda: smp_losses.LovaszLoss("multiclass", ignore_index=ignore_index),
        }
        self.losses = nn.ModuleDict({k: build[k]() for k in self.weights})

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (target != self.ignore_index).any():
            # nothing labelled (a tile outside a photographed board): no loss, rather than 0/0 = NaN
            return logits.sum() * 0.0
        with torch.autocast(logits.device.type, enabled=False):
            logits = logits.float()
            return sum(w * self.losses[k](logits, target) for k, w in self.weights.items())

    def set_class_weights(self, class_weights: Sequence[float]) -> None:
        """Replace the cross-entropy class weights (built with some, so the state dict keeps its keys)."""
        ce = self.losses["ce"] if "ce" in self.weights else None
        if ce is None or ce.weight is None:
            raise ValueError("class weights apply to cross-entropy, which this loss lacks or was built without weights")
        ce.weight.copy_(torch.as_tensor(class_weights, dtype=ce.weight.dtype))
