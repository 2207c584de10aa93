"""``PCBDataModule``: a dataset folder in the canonical layout, its fixed holdout, and loaders.

``prepare_data`` (run once per machine by Lightning) generates the synthetic set if asked and
missing, validates the dataset (every problem at once, before any training), and creates or
extends ``splits.csv``. ``setup`` only reads.

Example:
    >>> import tempfile, pathlib
    >>> from pcbseg.data.datamodule import PCBDataModule
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "synthetic"
    >>> dm = PCBDataModule(root, batch_size=2, crop_size=64, synth={"num_boards": 6, "size": 96, "workers": 1})
    >>> dm.prepare_data(); dm.setup("fit")
    >>> batch = next(iter(dm.train_dataloader()))
    >>> tuple(batch["image"].shape), tuple(batch["mask"].shape), dm.num_classes
    ((2, 3, 64, 64), (2, 64, 64), 7)
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info

from pcbseg.data.dataset import EpochShuffle, PadCollate, SegmentationDataset, TileDataset, rescale_size
from pcbseg.data.layout import DatasetError, DatasetLayout
from pcbseg.data.splits import SPLIT_NAMES, ensure_splits, read_splits
from pcbseg.data.synth import SYNTH_META, write_dataset
from pcbseg.data.validate import check_dataset, image_infos
from pcbseg.hardware import loader_workers
from pcbseg.taxonomy import Taxonomy, get_taxonomy, load_classes

log = logging.getLogger(__name__)


def seed_worker(worker_id: int) -> None:
    """Seed a loader worker's Python and NumPy RNGs from torch's per-worker seed.

    Training augmentation does not depend on this: each sample is seeded from (seed, epoch, index).
    """
    seed = get_worker_info().seed % 2**32
    random.seed(seed)
    np.random.seed(seed)


# Whole 640x480 frames went through a lite0 Unet 26% faster per image in batches of 2 than of 8 on
# 2 CPU cores (bf16; activations that fit the caches), and no faster in batches of 1 (docs/benchmarks.md).
EVAL_BATCH_PX = 2 * 640 * 480


def _pixels(path: Path, scale: float) -> int:
    """An image's pixels at ``scale``, from its header (nothing decoded)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except OSError:
        return 1  # unreadable here: the dataset names the file when it loads it
    h, w = rescale_size(h, w, scale)
    return h * w


class PCBDataModule(L.LightningDataModule):
    """Train on random crops, validate and test on whole images (or fixed tiles).

    Args:
        root: dataset folder (``images/ masks/ classes.yaml splits.csv``).
        batch_size: training batch size. ``val_batch_size`` (val and test batches of whole images)
            defaults to it, but on CPU to at most ``EVAL_BATCH_PX`` pixels a batch (at least one image).
        num_workers: DataLoader worker processes, or ``"auto"`` (see :func:`pcbseg.hardware.loader_workers`).
        scale: every image (and its mask, by nearest neighbour) is resized by this factor before
            cropping, for training and scoring alike; the model records it and predicts at it.
        scale_jitter: ``(low, high)``: each training crop is zoomed by a random factor in this range
            on top of ``scale`` (a square of ``crop_size / factor`` px resized to ``crop_size``; the
            mask by nearest neighbour), so the model meets boards a little nearer and farther.
        px_per_mm: what the dataset's images hold (pixels per millimetre of board), if known. The
            model then records the px/mm it saw (``px_per_mm * scale``), and prediction can take a
            photo's own px/mm instead of a scale (``px_per_mm=`` in ``pcbseg-predict``/``pcbseg-eval``).
        source_weights: for merged datasets (``pcbseg-import merge``; ids ``<source>__<id>``), the share
            of training samples drawn from each source, e.g. ``{sim: 1, photos: 1}`` for half and
            half whatever their sizes (unlisted sources weigh 1). An epoch stays one pass's length.
        cache_mb: decoded (and resized) images kept in memory, in MiB, shared out among the
            loader's processes; least recently used out first. 0 turns the cache off.
        crop_size: side of the random training crop (images smaller than it are mirrored out to it, image and mask).
        augment: albumentations transforms applied to each training crop (built from ``conf/augment``).
            Images come out as RGB in [0, 1]; the model normalises them for its encoder.
        seed: seeds the training order and each crop's augmentation, per epoch (default: torch's
            initial seed, which ``seed_everything`` sets), so a resumed run repeats the uninterrupted one.
        valid_pct, test_pct, split_seed, group_pattern: used once, when ``splits.csv`` is created.
        regenerate_splits: replace an existing ``splits.csv`` (a backup is kept).
        new_images: ``"train"`` or ``"error"`` for images the split file does not list yet.
        val_tile: if set, evaluate on ``val_tile``-sized tiles instead of whole images.
        pad_divisor: whole images are padded to a multiple of this (the encoder's stride).
        synth: if given, generate a synthetic dataset with these ``write_dataset`` arguments
            into ``root`` when it is missing; an existing one made with other arguments is an error.
    """

    def __init__(
        self,
        root: str | Path,
        batch_size: int = 8,
        num_workers: int | str = 0,
        crop_size: int = 256,
        scale: float = 1.0,
        scale_jitter: Sequence[float] | None = None,
        px_per_mm: float | None = None,
        source_weights: dict[str, float] | None = None,
        cache_mb: float = 1024,
        augment: A.BaseCompose | Sequence[A.BasicTransform] | None = None,
        seed: int | None = None,
        valid_pct: float = 0.2,
        test_pct: float = 0.0,
        split_seed: int = 42,
        group_pattern: str | None = None,
        regenerate_splits: bool = False,
        new_images: str = "train",
        val_tile: int | None = None,
        val_batch_size: int | None = None,
        pad_divisor: int = 32,
        pin_memory: bool = False,
        synth: dict[str, Any] | None = None,
    ):
        super().__init__()
        # Stored in checkpoints, so evaluation finds the dataset and holdout a model was trained on.
        self.save_hyperparameters({
            "root": str(root), "batch_size": batch_size, "crop_size": crop_size, "scale": scale, "valid_pct": valid_pct,
            "scale_jitter": list(scale_jitter) if scale_jitter else None, "px_per_mm": px_per_mm,
            "source_weights": dict(source_weights) if source_weights else None,
            "test_pct": test_pct, "split_seed": split_seed, "group_pattern": group_pattern, "new_images": new_images,
            "val_tile": val_tile, "pad_divisor": pad_divisor, "synth": dict(synth) if synth else None,
        })
        if crop_size % pad_divisor:
            raise ValueError(f"crop_size={crop_size} must be a multiple of pad_divisor={pad_divisor} (the encoder's stride)")
        if not (isinstance(scale, (int, float)) and 0.05 <= scale <= 8):
            raise ValueError(f"data.scale={scale!r} must be a number in [0.05, 8] (1 keeps images as they are)")
        if scale_jitter is not None and not (
                len(scale_jitter) == 2 and all(isinstance(v, (int, float)) for v in scale_jitter)
                and 0.1 <= scale_jitter[0] <= scale_jitter[1] <= 10):
            raise ValueError(f"data.scale_jitter={scale_jitter!r} must be [low, high] with 0.1 <= low <= high <= 10 "
                             "(or null for none)")
        if px_per_mm is not None and not (isinstance(px_per_mm, (int, float)) and 0.5 <= px_per_mm <= 500):
            raise ValueError(f"data.px_per_mm={px_per_mm!r} must be the images' pixels per mm (0.5 to 500), or null")
        if not (isinstance(cache_mb, (int, float)) and cache_mb >= 0):
            raise ValueError(f"data.cache_mb={cache_mb!r} must be a number of MiB >= 0")
        self.layout = DatasetLayout(root)
        self.batch_size, self.crop_size = batch_size, crop_size
        self.num_workers = loader_workers(num_workers)
        self.scale, self.cache_mb = float(scale), float(cache_mb)
        self.scale_jitter = (float(scale_jitter[0]), float(scale_jitter[1])) if scale_jitter else None
        self.px_per_mm = float(px_per_mm) if px_per_mm is not None else None
        self.source_weights = {str(k): float(v) for k, v in (source_weights or {}).items()}
        if any(v < 0 for v in self.source_weights.values()) or (self.source_weights and not any(self.source_weights.values())):
            raise ValueError(f"data.source_weights={self.source_weights}: weights must be >= 0, and not all 0")
        self.augment = augment
        self.seed = seed
        self.split_args = {"valid_pct": valid_pct, "test_pct": test_pct, "seed": split_seed,
                           "group_pattern": group_pattern, "new_images": new_images}
        self.regenerate_splits = regenerate_splits
        self.val_tile, self.pad_divisor = val_tile, pad_divisor
        self._val_batch_size = val_batch_size
        self.pin_memory = pin_memory
        self.synth = dict(synth) if synth else None
        self.taxonomy: Taxonomy | None = None
        self.datasets: dict[str, SegmentationDataset | TileDataset] = {}
        self.sample_weights: list[float] | None = None

    # data on disk ---------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.synth is not None:
            self._ensure_synthetic()
        for warning in check_dataset(self.layout.root):
            log.warning(str(warning))
        images, _ = self.layout.image_files()
        ensure_splits(self.layout.splits, images, regenerate=self.regenerate_splits, **self.split_args)
        self.regenerate_splits = False  # asked once, done once: a second prepare_data must not redo it

    def _ensure_synthetic(self) -> None:
        meta_path = self.layout.root / SYNTH_META
        if not self.layout.root.exists() or not any(self.layout.root.iterdir()):
            log.info("Generating the synthetic dataset in %s (%s)", self.layout.root, self.synth)
            try:
                write_dataset(self.layout.root, **self.synth)
            except OSError:
                if not meta_path.exists():  # another process finishing first is fine; anything else is not
                    raise
            return
        if not meta_path.exists():
            raise DatasetError(self.layout.root, f"exists but has no {SYNTH_META}: not a synthetic dataset; "
                               "use data=folder to train on it, or point data.root elsewhere")
        made = json.loads(meta_path.read_text())
        made.setdefault("look", "classic")  # made before looks existed
        differs = {k: (made.get(k), v) for k, v in self.synth.items() if k != "workers" and made.get(k) != v}
        if differs:
            detail = ", ".join(f"{k}: made with {a!r}, asked {b!r}" for k, (a, b) in differs.items())
            raise DatasetError(self.layout.root, f"synthetic dataset was made with other settings ({detail}); "
                               "set data.root to a new folder to generate another, or delete this one")

    # datasets -------------------------------------------------------------------------------
    def _train_transform(self) -> A.Compose:
        crop = self.crop_size
        # Crops larger than the image are mirrored out, image and mask alike, as the predictor and the val
        # batches pad: a black margin here taught the resistor models a border they never met at prediction
        # (pcb-resistor, 3 epochs: holdout mIoU 0.86 against 0.94, mean of 3 seeds; docs/benchmarks.md, short-runs).
        if self.scale_jitter is None or self.scale_jitter == (1.0, 1.0):
            steps: list = [A.PadIfNeeded(crop, crop, position="random", border_mode=cv2.BORDER_REFLECT_101),
                           A.RandomCrop(crop, crop)]
        else:
            # Zooming by f is cutting a crop/f square and resizing it to crop: one resize of the crop,
            # not of the whole (possibly 4000 px) photo.
            lo, hi = max(8, round(crop / self.scale_jitter[1])), max(8, round(crop / self.scale_jitter[0]))
            steps = [A.PadIfNeeded(hi, hi, position="random", border_mode=cv2.BORDER_REFLECT_101),
                     A.RandomSizedCrop((lo, hi), (crop, crop), interpolation=cv2.INTER_LINEAR,
                                       mask_interpolation=cv2.INTER_NEAREST, area_for_downscale="image")]
        if self.augment is not None:
            steps += [self.augment] if isinstance(self.augment, A.BaseCompose) else list(self.augment)
        return A.Compose(steps)

    def setup(self, stage: str | None = None) -> None:
        if not self.layout.splits.exists():
            raise DatasetError(self.layout.splits, "missing; run prepare_data() first (the Trainer does)")
        self.taxonomy = load_classes(self.layout.classes)
        rows = read_splits(self.layout.splits)
        self.split_ids = {s: sorted(r.id for r in rows if r.split == s) for s in SPLIT_NAMES}
        if not self.split_ids["train"] and stage in (None, "fit"):
            raise DatasetError(self.layout.splits, "no image is in the train split")
        if not self.split_ids["val"] and stage in (None, "fit", "validate"):
            raise DatasetError(self.layout.splits, "no image is in the val split, so nothing would judge the model: "
                               "make the split again with data.valid_pct > 0 and data.regenerate_splits=true "
                               "(the old file is kept as a backup), or move some groups to val by hand")
        seed = self.seed if self.seed is not None else torch.initial_seed() % 2**32
        # The cache bound is shared out: each loader process (workers, or the main one) keeps its own.
        per_process = int(self.cache_mb * 2**20 / max(1, self.num_workers))
        self.datasets["train"] = SegmentationDataset(self.layout.root, self.split_ids["train"], self._train_transform(),
                                                     seed=seed, scale=self.scale, cache_bytes=per_process)
        self.sample_seed = seed
        self.sample_weights = self._sample_weights(self.split_ids["train"]) if self.source_weights else None
        infos = image_infos(self.layout.root) if self.val_tile else {}
        for split in ("val", "test"):
            # Whole images are read once an epoch, in order: a cache would only hold what train could use.
            ds = SegmentationDataset(self.layout.root, self.split_ids[split], scale=self.scale)
            if self.val_tile:
                sizes = [rescale_size(infos[i].height, infos[i].width, self.scale) for i in ds.ids]
                ds = TileDataset(ds, sizes, self.val_tile, self.taxonomy.ignore_index)
            self.datasets[split] = ds
        log.info("Dataset %s: %s", self.layout.root, {s: len(v) for s, v in self.split_ids.items()})

    def peek_taxonomy(self) -> Taxonomy:
        """The classes, known before ``prepare_data`` (a model needs them to be built)."""
        if self.taxonomy is not None:
            return self.taxonomy
        if self.layout.classes.exists():
            return load_classes(self.layout.classes)
        if self.synth is not None:
            return get_taxonomy(self.synth.get("taxonomy", "default"))
        raise DatasetError(self.layout.classes, "missing: every dataset needs a classes.yaml (see README, 'Datasets')")

    def class_pixel_counts(self, max_images: int = 512) -> list[int]:
        """Labelled pixels of each class over the train split's masks (at ``scale``; ignore not counted).

        On a larger split, ``max_images`` evenly spaced masks stand for it: the class mix is what
        callers need, and it must stay cheap since the default model asks for it at every start.
        """
        n = self.peek_taxonomy().num_classes
        counts = np.zeros(256, np.int64)
        ds = self.datasets["train"]
        picked = np.unique(np.linspace(0, len(ds) - 1, min(len(ds), max_images)).round().astype(int))
        for i in picked:
            counts += np.bincount(ds.load(int(i))[1].ravel(), minlength=256)
        return counts[:n].tolist()

    @property
    def num_classes(self) -> int:
        return self.peek_taxonomy().num_classes

    @property
    def ignore_index(self) -> int:
        return self.peek_taxonomy().ignore_index

    def _sample_weights(self, ids: Sequence[str]) -> list[float]:
        """Per training image: its source's weight shared among that source's images."""
        sources = [i.split("__", 1)[0] if "__" in i else "" for i in ids]
        counts = {s: sources.count(s) for s in set(sources)}
        unknown = sorted(set(self.source_weights) - set(counts))
        if unknown:
            raise DatasetError(self.layout.splits, f"data.source_weights names {unknown}, but the train split's sources "
                               f"(the part of each id before '__', as pcbseg-import merge writes) are {sorted(counts)}")
        weights = [self.source_weights.get(s, 1.0) / counts[s] for s in sources]
        if not any(weights):
            raise DatasetError(self.layout.splits, f"data.source_weights={self.source_weights} leaves no training image")
        log.info("Sampling by source: %s", {s: round(self.source_weights.get(s, 1.0), 3) for s in sorted(counts)})
        return weights

    # loaders --------------------------------------------------------------------------------
    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        ds = self.datasets[split]
        return DataLoader(
            ds,
            batch_size=batch_size,
            sampler=EpochShuffle(len(ds), self.sample_seed, self._current_epoch, self.sample_weights) if shuffle else None,
            drop_last=shuffle and len(ds) > batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=seed_worker,
            pin_memory=self.pin_memory,
            # Training crops share one size already; whole val/test images need padding to batch.
            collate_fn=None if shuffle else PadCollate(self.pad_divisor, self.taxonomy.ignore_index),
        )

    def _current_epoch(self) -> int | None:
        """The epoch the trainer is about to run: epochs processed so far (a resumed run has not yet
        counted its last one as completed when it makes its loader, so ``current_epoch`` is behind)."""
        if self.trainer is None:
            return None
        return int(self.trainer.fit_loop.epoch_progress.current.processed)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    @property
    def val_batch_size(self) -> int:
        """Images per val/test batch: ``val_batch_size`` if given; else ``batch_size``, on CPU cut to
        ``EVAL_BATCH_PX`` pixels of the split's largest image (of the first 64), tiles or scale applied."""
        if self._val_batch_size:
            return self._val_batch_size
        from lightning.pytorch.accelerators import CPUAccelerator

        ds = self.datasets.get("val")
        on_cpu = self.trainer is None or isinstance(self.trainer.accelerator, CPUAccelerator)
        if not on_cpu or ds is None:
            return self.batch_size
        tiled = isinstance(ds, TileDataset)
        px = ds.tile ** 2 if tiled else max((_pixels(p, ds.scale) for p in ds.paths[:64]), default=1)
        return max(1, min(self.batch_size, EVAL_BATCH_PX // max(1, px)))

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if not self.split_ids["test"]:
            raise DatasetError(self.layout.splits, "no image is in the test split (set data.test_pct when the split is made)")
        return self._loader("test", self.val_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The holdout's whole images (val split), for ``trainer.predict``; each batch keeps its ``id``."""
        return self._loader("val", self.val_batch_size, shuffle=False)
