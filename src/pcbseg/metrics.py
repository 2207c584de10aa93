"""Segmentation metrics from torchmetrics: per-class IoU and Dice, mean IoU, pixel error rate.

Mean IoU and mean Dice average over the classes *present* (in the ground truth or the
prediction) in the evaluated pixels: an absent class has no IoU, rather than a free 1 or a 0.
Pixel error rate is ``1 - pixel accuracy`` over non-ignored pixels (fast.ai's ``error_rate``).

Example:
    >>> import torch
    >>> m = SegmentationMetrics(["bg", "fg", "unused"], ignore_index=255)
    >>> m.update(torch.tensor([[0, 1], [1, 1]]), torch.tensor([[0, 1], [0, 255]]))
    >>> r = m.compute(); r["mIoU"], round(r["pixel_error_rate"], 4), r["per_class_iou"]["fg"], r["classes_present"]
    (0.5, 0.3333, 0.5, ['bg', 'fg'])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex


class SegmentationMetrics(nn.Module):
    def __init__(self, class_names: Sequence[str], ignore_index: int = 255):
        super().__init__()
        self.class_names = list(class_names)
        n = len(self.class_names)
        nan = float("nan")  # a class with no pixels on either side has no score
        self.iou = MulticlassJaccardIndex(n, average="none", ignore_index=ignore_index, zero_division=nan)
        self.dice = MulticlassF1Score(n, average="none", ignore_index=ignore_index)  # absent: masked by IoU's NaN
        self.accuracy = MulticlassAccuracy(n, average="micro", ignore_index=ignore_index)

    @torch.no_grad()
    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """``preds``: class ids (N,H,W) or logits (N,C,H,W); ``target``: class ids (N,H,W)."""
        if preds.ndim == target.ndim + 1:
            preds = preds.argmax(1)
        for metric in (self.iou, self.dice, self.accuracy):
            metric.update(preds, target)

    def compute(self) -> dict:
        iou, dice = self.iou.compute().float(), self.dice.compute().float()
        present = ~torch.isnan(iou)  # Dice has the same denominator up to a factor: same presence
        dice[~present] = float("nan")
        return {
            "mIoU": float(iou[present].mean()) if present.any() else float("nan"),
            "dice": float(dice[present].mean()) if present.any() else float("nan"),
            "pixel_error_rate": 1.0 - float(self.accuracy.compute()),
            "per_class_iou": {n: float(v) for n, v in zip(self.class_names, iou, strict=True)},
            "per_class_dice": {n: float(v) for n, v in zip(self.class_names, dice, strict=True)},
            "classes_present": [n for n, p in zip(self.class_names, present, strict=True) if p],
        }

    def reset(self) -> None:
        for metric in (self.iou, self.dice, self.accuracy):
            metric.reset()
