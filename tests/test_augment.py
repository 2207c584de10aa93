"""Every augmentation pipeline in conf/augment keeps image and mask aligned and invents no class ids."""

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
from hydra.utils import instantiate

from pcbseg.config import compose

PIPELINES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "augment").glob("*.yaml"))
# Saturated, well separated colours: colour jitter, grey and noise move them, but never into each other.
COLOURS = np.array([[230, 20, 20], [20, 230, 20], [20, 20, 230], [240, 240, 240]], np.uint8)


def _pattern(rng: np.random.Generator, size: int = 128, cell: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of 4 classes in a random, asymmetric layout; the image colour encodes the class."""
    grid = rng.integers(0, 4, (size // cell, size // cell))
    mask = np.kron(grid, np.ones((cell, cell), np.int64)).astype(np.uint8)
    return COLOURS[mask], mask


def _agreement(image: np.ndarray, mask: np.ndarray) -> float:
    """Share of interior mask pixels whose image colour is closest to their own class's median colour."""
    img = image.astype(np.float32)
    if img.ndim == 2:
        img = img[..., None]
    valid = [c for c in range(4) if (mask == c).sum() > 50]
    medians = np.stack([np.median(img[mask == c], axis=0) for c in valid])
    inner = np.zeros_like(mask, bool)
    inner[2:-2, 2:-2] = True
    for dy in (-2, 0, 2):  # away from edges, where blur and interpolation legitimately mix colours
        for dx in (-2, 0, 2):
            inner &= np.roll(mask, (dy, dx), axis=(0, 1)) == mask
    pick = inner & np.isin(mask, valid)
    dist = np.linalg.norm(img[pick][:, None, :] - medians[None], axis=2)
    return float((np.asarray(valid)[dist.argmin(1)] == mask[pick]).mean())


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_builds_from_config(name: str):
    cfg = compose("synth", [f"+augment={name}"])
    pipeline = instantiate(cfg.augment)
    assert isinstance(pipeline, A.Compose)


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_keeps_mask_aligned_with_image(name: str):
    pipeline = instantiate(compose("synth", [f"+augment={name}"]).augment)
    pipeline.set_random_seed(0)
    rng = np.random.default_rng(0)
    worst = 1.0
    for _ in range(25):
        image, mask = _pattern(rng)
        out = pipeline(image=image, mask=mask)
        assert out["image"].shape[:2] == out["mask"].shape
        assert set(np.unique(out["mask"]).tolist()) <= {0, 1, 2, 3, 255}, "mask interpolation invented class ids"
        worst = min(worst, _agreement(out["image"], out["mask"]))
    assert worst > 0.97, f"{name}: image and mask disagree on {1 - worst:.1%} of interior pixels"


def test_alignment_check_catches_a_misaligned_pipeline():
    """The check above must fail when only the image is flipped."""
    rng = np.random.default_rng(1)
    image, mask = _pattern(rng)
    assert _agreement(image[:, ::-1], mask) < 0.6
