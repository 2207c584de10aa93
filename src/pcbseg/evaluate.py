"""Full-resolution evaluation: confusion matrix and everything derived from it, boundary IoU, per-image scores.

The confusion matrix is torchmetrics'; IoU, Dice, precision and recall per class follow from it
(a class with no pixels on either side gets NaN, not a free score). Boundary IoU (Cheng et al.,
2021) compares only the band of width ``d`` inside each region's contour, which is where thin
classes such as traces and vias are won or lost.

Example:
    >>> import numpy as np
    >>> acc = Evaluation(["bg", "fg"], ignore_index=255, boundary_px=1)
    >>> _ = acc.add("a", np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 255]]))
    >>> m = acc.metrics(); m["confusion_matrix"], m["per_class"]["fg"]["precision"]
    ([[1, 1], [0, 1]], 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix

from pcbseg.metrics import _safe, scores_from_confusion


def boundary(mask: np.ndarray, d: int) -> np.ndarray:
    """Pixels of a binary mask within ``d`` pixels of its contour (inside the mask)."""
    m = mask.astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
    # The image border is not a contour: pad by replication so regions touching it are not eroded there.
    eroded = cv2.erode(cv2.copyMakeBorder(m, d, d, d, d, cv2.BORDER_REPLICATE), k)[d:-d, d:-d]
    return (m > 0) & (eroded == 0)


@dataclass
class ImageResult:
    id: str
    miou: float
    pixel_error_rate: float
    valid_pixels: int


@dataclass
class Evaluation:
    """Accumulate predictions image by image; ``metrics()`` gives the dataset's numbers."""

    class_names: list[str]
    ignore_index: int = 255
    boundary_px: int | None = None  # None: 2% of each image's diagonal, as in the Boundary IoU paper
    confusion: np.ndarray = field(init=False)
    b_inter: np.ndarray = field(init=False)
    b_union: np.ndarray = field(init=False)
    images: list[ImageResult] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.class_names)
        self.confusion = np.zeros((n, n), np.int64)
        self.b_inter = np.zeros(n, np.int64)
        self.b_union = np.zeros(n, np.int64)

    def add(self, image_id: str, pred: np.ndarray, target: np.ndarray) -> ImageResult:
        n = len(self.class_names)
        cm = multiclass_confusion_matrix(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(target.astype(np.int64)),
                                         n, ignore_index=self.ignore_index).numpy()
        self.confusion += cm
        valid = target != self.ignore_index
        d = self.boundary_px or max(1, round(0.02 * math.hypot(*target.shape)))
        for c in range(n):
            g, p = (target == c) & valid, (pred == c) & valid
            if not g.any() and not p.any():
                continue
            gb, pb = boundary(g, d), boundary(p, d) & valid
            self.b_inter[c] += int((gb & pb).sum())
            self.b_union[c] += int((gb | pb).sum())
        iou = scores_from_confusion(cm)["iou"]
        total = int(cm.sum())
        result = ImageResult(image_id, float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
                             1 - float(np.trace(cm)) / total if total else float("nan"), total)
        self.images.append(result)
        return result

    def metrics(self) -> dict:
        s = scores_from_confusion(self.confusion)
        b_iou = _safe(self.b_inter.astype(np.float64), self.b_union.astype(np.float64))
        present = np.isfinite(s["iou"])
        total = self.confusion.sum()
        freq = self.confusion.sum(1) / total if total else np.zeros(len(self.class_names))

        def clean(v: float) -> float | None:
            return None if not np.isfinite(v) else float(v)

        per_class = {
            name: {"iou": clean(s["iou"][i]), "dice": clean(s["dice"][i]), "precision": clean(s["precision"][i]),
                   "recall": clean(s["recall"][i]), "boundary_iou": clean(b_iou[i]), "pixel_frequency": float(freq[i])}
            for i, name in enumerate(self.class_names)
        }
        return {
            "mIoU": clean(np.nanmean(s["iou"])) if present.any() else None,
            "mDice": clean(np.nanmean(s["dice"])) if present.any() else None,
            "pixel_error_rate": clean(1 - np.trace(self.confusion) / total) if total else None,
            # what "always predict the most frequent class" would score: a model must beat it
            "majority_pixel_error_rate": clean(1 - self.confusion.sum(1).max() / total) if total else None,
            "mIoU_over": [n for n, p in zip(self.class_names, present, strict=True) if p],
            "per_class": per_class,
            "confusion_matrix": self.confusion.tolist(),
            "classes": list(self.class_names),
            "per_image": [{"id": r.id, "mIoU": clean(r.miou), "pixel_error_rate": clean(r.pixel_error_rate)}
                          for r in self.images],
            "num_images": len(self.images),
            "num_pixels": int(total),
        }


class ImageSource(Protocol):
    """What :func:`evaluate_images` reads: ids, and (image, mask) by position (a ``SegmentationDataset``)."""

    ids: list[str]

    def __len__(self) -> int: ...

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...


def evaluate_images(predict: Callable[[np.ndarray], np.ndarray], images: ImageSource, class_names: list[str],
                    ignore_index: int = 255, boundary_px: int | None = None,
                    on_image: Callable[[str, np.ndarray, np.ndarray, np.ndarray, ImageResult], None] | None = None,
                    ) -> Evaluation:
    """Predict every image at full resolution and score it: the one evaluation path.

    ``pcbseg-eval`` and the holdout score ``pcbseg-train`` writes into ``summary.json`` both come
    from here, so the same checkpoint, split and tiling give the same numbers in both.
    ``on_image(id, image, target, pred, result)`` sees each image as it is scored.
    """
    evaluation = Evaluation(list(class_names), ignore_index, boundary_px)
    for i in range(len(images)):
        image, target = images.load(i)
        pred = predict(image)
        result = evaluation.add(images.ids[i], pred, target)
        if on_image is not None:
            on_image(images.ids[i], image, target, pred, result)
    return evaluation
