"""Torch datasets over the canonical layout: whole images, or fixed tiles of them.

Example:
    >>> import tempfile, pathlib
    >>> from pcbseg.data.synth import write_dataset
    >>> root = write_dataset(pathlib.Path(tempfile.mkdtemp()) / "d", num_boards=2, size=64, workers=1)
    >>> ds = SegmentationDataset(root, ["board_00000"])
    >>> s = ds[0]; s["image"].shape, s["mask"].dtype
    (torch.Size([3, 64, 64]), torch.int64)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from pcbseg.data.cache import PairCache
from pcbseg.data.layout import DatasetLayout, read_image, read_mask


def to_tensor_pair(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """HxWxC float/uint8 and HxW uint8 -> CxHxW float32 and HxW int64."""
    img = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    img = img.float().div_(255.0) if img.dtype == torch.uint8 else img.float()
    return img, torch.from_numpy(np.ascontiguousarray(mask)).long()


def reflect_pad(image: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    """Pad a CxHxW image on the bottom and right by mirroring it, as the predictor pads (``np.pad`` ``reflect``).

    Training crops are padded the same way (``cv2.BORDER_REFLECT_101``), so a model never meets a black margin at
    prediction that it did not learn, or learns one it will not meet. Pads longer than the image repeat the mirror."""
    while bottom > 0 or right > 0:
        h, w = image.shape[-2:]
        if h < 2 or w < 2:  # nothing to mirror: repeat the edge
            return F.pad(image[None], (0, right, 0, bottom), mode="replicate")[0]
        b, r = min(bottom, h - 1), min(right, w - 1)
        image = F.pad(image[None], (0, r, 0, b), mode="reflect")[0]
        bottom, right = bottom - b, right - r
    return image


def rescale_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """``(height, width)`` of an image resized by ``scale``, as :func:`rescale_pair` makes it."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def rescale_pair(image: np.ndarray, mask: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize an image (area-averaged when shrinking) and its mask (nearest neighbour: ids stay ids) by ``scale``."""
    if scale == 1:
        return image, mask
    h, w = rescale_size(*mask.shape, scale)
    size = (w, h)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp), cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The random seed of one sample's augmentation in one epoch: independent of order, workers and resumes."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def seed_transform(transform: A.BaseCompose, seed: int) -> None:
    """Seed an albumentations pipeline with one generator its transforms share.

    ``Compose.set_random_seed`` gives every transform its own generator from the same seed, so
    two flips of equal probability would always flip together.
    """
    transform.set_random_state(np.random.default_rng(seed), random.Random(seed))


class EpochShuffle(Sampler):
    """A new random order each epoch, drawn from ``(seed, epoch)`` alone; yields ``(index, epoch)``.

    Passing the epoch with each index lets the dataset seed that sample's augmentation from
    ``(seed, epoch, index)``, so a run resumed from a checkpoint sees exactly the crops and
    flips the uninterrupted run saw, whatever the number of loader workers. The epoch comes from
    ``epoch_fn`` when given (the datamodule passes the trainer's epoch: a loader with workers draws
    its first indices before Lightning calls :meth:`set_epoch`), else from :meth:`set_epoch`, else
    it counts up by itself. With ``weights`` (one per sample) an epoch is ``size`` draws with
    replacement, each sample as likely as its weight (per-source sampling of merged datasets).
    """

    def __init__(self, size: int, seed: int, epoch_fn: Callable[[], int | None] | None = None,
                 weights: Sequence[float] | None = None):
        self.size, self.seed, self.epoch, self.epoch_fn = size, seed, 0, epoch_fn
        self.weights = torch.as_tensor(weights, dtype=torch.float64) if weights is not None else None
        self._told = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._told = epoch, True

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        known = self.epoch_fn() if self.epoch_fn is not None else None
        epoch = known if known is not None else self.epoch
        if known is None and not self._told:
            self.epoch += 1
        self._told = False
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0]))
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.size, replacement=True, generator=g)
        else:
            order = torch.randperm(self.size, generator=g)
        return iter([(i, epoch) for i in order.tolist()])


class SegmentationDataset(Dataset):
    """Image/mask pairs by id; ``transform`` is an albumentations pipeline applied to both.

    Images come out as float RGB in [0, 1] (the model normalises them for its encoder), resized by
    ``scale`` (masks by nearest neighbour). Up to ``cache_bytes`` of decoded pairs stay in memory. Indexed
    by ``(index, epoch)`` (see :class:`EpochShuffle`) and given a ``seed``, each sample's
    augmentation is seeded from ``(seed, epoch, index)``.
    """

    def __init__(self, root: str | Path, ids: Sequence[str], transform: A.BaseCompose | None = None,
                 seed: int | None = None, scale: float = 1.0, cache_bytes: int = 0):
        self.layout = DatasetLayout(root)
        images, _ = self.layout.image_files()
        missing = [i for i in ids if i not in images]
        if missing:
            raise KeyError(f"{self.layout.images}: no image for id(s) {missing[:5]}")
        self.ids = list(ids)
        self.paths = [images[i] for i in self.ids]
        self.transform = transform
        self.seed = seed
        self.scale = float(scale)
        self.cache = PairCache(cache_bytes)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The image and mask, decoded and resized by ``scale``; from the cache when it holds them (read-only)."""
        pair = self.cache.get(index)
        if pair is None:
            image, mask = read_image(self.paths[index]), read_mask(self.layout.mask_path(self.ids[index]))
            if image.shape[:2] != mask.shape:  # caught by validation too; here the resize would hide it
                raise ValueError(f"{self.paths[index]}: image is {image.shape[1]}x{image.shape[0]} but its mask is "
                                 f"{mask.shape[1]}x{mask.shape[0]}")
            pair = rescale_pair(image, mask, self.scale)
            self.cache.put(index, *pair)
        return pair

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, None)
        image, mask = self.load(index)
        if self.transform is not None and self.seed is not None and epoch is not None:
            seed_transform(self.transform, sample_seed(self.seed, epoch, index))
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        img, msk = to_tensor_pair(image, mask)
        return {"image": img, "mask": msk, "id": self.ids[index]}


class TileDataset(Dataset):
    """Non-overlapping ``tile`` x ``tile`` windows of every image; edge tiles are mirrored out, their masks ignore."""

    def __init__(self, base: SegmentationDataset, sizes: Sequence[tuple[int, int]], tile: int, ignore_index: int = 255):
        self.base, self.tile, self.ignore_index = base, tile, ignore_index
        self.index = [(i, y, x) for i, (h, w) in enumerate(sizes)
                      for y in range(0, h, tile) for x in range(0, w, tile)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict:
        i, y, x = self.index[k]
        sample = self.base[i]  # tiles of one image share a decode when the base dataset caches
        img = sample["image"][:, y:y + self.tile, x:x + self.tile]
        msk = sample["mask"][y:y + self.tile, x:x + self.tile]
        ph, pw = self.tile - img.shape[1], self.tile - img.shape[2]
        if ph or pw:
            img = reflect_pad(img, ph, pw)
            msk = F.pad(msk, (0, pw, 0, ph), value=self.ignore_index)
        return {"image": img, "mask": msk, "id": f"{sample['id']}@{y},{x}"}


class PadCollate:
    """Batch images of different sizes: pad each to the batch's largest, rounded up to ``divisor``.

    The image is mirrored out (:func:`reflect_pad`, as the predictor pads) and the mask padded with
    ``ignore_index``, so no metric counts the padding.
    """

    def __init__(self, divisor: int = 32, ignore_index: int = 255):
        self.divisor, self.ignore_index = divisor, ignore_index

    def __call__(self, batch: list[dict]) -> dict:
        d = self.divisor
        h = max(s["image"].shape[1] for s in batch)
        w = max(s["image"].shape[2] for s in batch)
        h, w = -(-h // d) * d, -(-w // d) * d
        images, masks = [], []
        for s in batch:
            ph, pw = h - s["image"].shape[1], w - s["image"].shape[2]
            images.append(reflect_pad(s["image"], ph, pw))
            masks.append(F.pad(s["mask"], (0, pw, 0, ph), value=self.ignore_index))
        return {"image": torch.stack(images), "mask": torch.stack(masks), "id": [s["id"] for s in batch]}
