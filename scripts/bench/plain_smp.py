"""The reference: a plain hand-written smp training script, as a researcher would write it in an afternoon.

Plain PyTorch, smp Unet on the same offline ImageNet EfficientNet-Lite0 encoder pcbseg uses,
Dice + cross-entropy (Dice + BCE on one logit for two classes), Adam at a constant 1e-3, random
flips and crops, float32, for a fixed number of minutes. No frozen phase, no schedule, no
validation during training. Then the final model predicts every image of the val split in one
pass at the training scale, upsampled back (nearest), scored by pcbseg's own metric code so both
sides of the comparison are measured alike.

    python scripts/bench/plain_smp.py --root data/pcb-resistor --minutes 2 --seed 0 --out plain.json \
        [--scale 1.0] [--crop 128] [--batch 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import cv2
import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F

from pcbseg.data.layout import DatasetLayout, read_image, read_mask
from pcbseg.data.splits import read_splits
from pcbseg.evaluate import evaluate_images
from pcbseg.models.weights import apply_weights, resolve_weights
from pcbseg.taxonomy import load_classes

ENCODER = "tu-tf_efficientnet_lite0"


def load(layout: DatasetLayout, ids: list[str], scale: float) -> list[tuple[np.ndarray, np.ndarray]]:
    images, _ = layout.image_files()
    out = []
    for i in ids:
        img, msk = read_image(images[i]), read_mask(layout.mask_path(i))
        if scale != 1:
            size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            msk = cv2.resize(msk, size, interpolation=cv2.INTER_NEAREST)
        out.append((img, msk))
    return out


def random_crop(img: np.ndarray, msk: np.ndarray, crop: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    h, w = msk.shape
    ph, pw = max(0, crop - h), max(0, crop - w)
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)))
        msk = np.pad(msk, ((0, ph), (0, pw)), constant_values=255)
        h, w = msk.shape
    y, x = rng.randint(0, h - crop), rng.randint(0, w - crop)
    img, msk = img[y:y + crop, x:x + crop], msk[y:y + crop, x:x + crop]
    if rng.random() < 0.5:
        img, msk = img[:, ::-1], msk[:, ::-1]
    if rng.random() < 0.5:
        img, msk = img[::-1], msk[::-1]
    return img, msk


def to_input(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    return (x - 0.5) / 0.5  # what the lite0 ImageNet weights expect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    layout = DatasetLayout(args.root)
    tax = load_classes(layout.classes)
    rows = read_splits(layout.splits)
    train = load(layout, sorted(r.id for r in rows if r.split == "train"), args.scale)
    binary = tax.num_classes == 2

    model = smp.Unet(ENCODER, encoder_weights=None, classes=1 if binary else tax.num_classes)
    _, state, info = resolve_weights(ENCODER, "imagenet")
    apply_weights(model.encoder, ENCODER, state, info)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    if binary:
        dice = smp.losses.DiceLoss("binary", ignore_index=255)

        def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            keep = (target != 255).unsqueeze(1).float()
            t = (target == 1).unsqueeze(1).float()
            bce = (F.binary_cross_entropy_with_logits(logits, t, reduction="none") * keep).sum() / keep.sum().clamp(min=1)
            return bce + dice(logits, target.unsqueeze(1).float())
    else:
        dice = smp.losses.DiceLoss("multiclass", ignore_index=255)

        def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits, target, ignore_index=255) + dice(logits, target)

    start, steps = time.perf_counter(), 0
    model.train()
    while time.perf_counter() - start < args.minutes * 60:
        pairs = [random_crop(*train[rng.randrange(len(train))], args.crop, rng) for _ in range(args.batch)]
        x = to_input(np.stack([p[0] for p in pairs]))
        y = torch.from_numpy(np.stack([np.ascontiguousarray(p[1]) for p in pairs])).long()
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    train_s = time.perf_counter() - start

    model.eval()

    @torch.no_grad()
    def predict(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        small = image if args.scale == 1 else cv2.resize(
            image, (max(1, round(w * args.scale)), max(1, round(h * args.scale))), interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        padded = np.pad(small, ((0, -sh % 32), (0, -sw % 32), (0, 0)), mode="reflect")
        logits = model(to_input(padded[None]))[0, :, :sh, :sw]
        pred = (logits[0] > 0).to(torch.uint8) if binary else logits.argmax(0).to(torch.uint8)
        return cv2.resize(pred.numpy(), (w, h), interpolation=cv2.INTER_NEAREST)

    class Val:
        ids = sorted(r.id for r in rows if r.split == "val")
        files = layout.image_files()[0]

        def __len__(self) -> int:
            return len(self.ids)

        def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            return read_image(self.files[self.ids[i]]), read_mask(layout.mask_path(self.ids[i]))

    m = evaluate_images(predict, Val(), list(tax.names), tax.ignore_index).metrics()
    result = {"mIoU": m["mIoU"], "pixel_error_rate": m["pixel_error_rate"],
              "majority_pixel_error_rate": m["majority_pixel_error_rate"],
              "per_class_iou": {k: v["iou"] for k, v in m["per_class"].items()},
              "confusion_matrix": m["confusion_matrix"], "steps": steps, "train_s": round(train_s, 1),
              "images_per_s": round(steps * args.batch / train_s, 2), "args": {k: str(v) for k, v in vars(args).items()}}
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("mIoU", "pixel_error_rate", "steps", "images_per_s")}))


if __name__ == "__main__":
    main()
