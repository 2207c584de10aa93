"""The canonical dataset layout every source ends up in, and reading/writing its files.

::

    <root>/images/<id>.<png|jpg>    any size, 8-bit grey or colour
    <root>/masks/<id>.png           uint8 class id per pixel, 255 = ignore
    <root>/classes.yaml             names, ids, colours, ignore_index
    <root>/splits.csv               id, split (train/val/test), group

Example:
    >>> import tempfile, numpy as np
    >>> from pcbseg.data.layout import DatasetLayout, write_mask, read_mask
    >>> root = DatasetLayout(tempfile.mkdtemp())
    >>> root.masks.mkdir(parents=True)
    >>> write_mask(root.masks / "a.png", np.eye(4, dtype=np.uint8))
    >>> read_mask(root.masks / "a.png").sum()
    np.uint64(4)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class DatasetError(ValueError):
    """A dataset is malformed; the message names the file and what is wrong."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


class DatasetLayout:
    """Paths of one dataset root."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.images = self.root / "images"
        self.masks = self.root / "masks"
        self.classes = self.root / "classes.yaml"
        self.splits = self.root / "splits.csv"

    def mask_path(self, image_id: str) -> Path:
        return self.masks / f"{image_id}.png"

    def image_files(self) -> tuple[dict[str, Path], list[tuple[str, list[Path]]]]:
        """Images by id (file stem; extensions matched case-insensitively), and ids found twice."""
        found: dict[str, list[Path]] = {}
        if self.images.is_dir():
            for p in sorted(self.images.iterdir()):
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
                    found.setdefault(p.stem, []).append(p)
        dupes = [(k, v) for k, v in found.items() if len(v) > 1]
        return {k: v[0] for k, v in found.items() if len(v) == 1}, dupes

    def __repr__(self) -> str:
        return f"DatasetLayout({str(self.root)!r})"


def read_image(path: str | Path) -> np.ndarray:
    """An HxWx3 RGB uint8 image. Grey, RGBA and 16-bit files are converted; EXIF rotation applied."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(path, "cannot be read as an image (missing, corrupt or unsupported format)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def image_size(path: str | Path) -> tuple[int, int] | None:
    """``(height, width)`` of an image file as :func:`read_image` gives it (EXIF rotation applied), or None
    when it cannot be read (importers skip it). Importing, validating, training and predicting all see
    one orientation, so a phone photo's labels never end up turned."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if img is None else img.shape[:2]


def read_mask(path: str | Path) -> np.ndarray:
    """An HxW uint8 class-id mask; anything else is an error naming the file."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DatasetError(path, "cannot be read as a mask (missing, corrupt or unsupported format)")
    if mask.ndim != 2:
        raise DatasetError(
            path,
            f"mask has {mask.shape[2]} channels; expected one channel of class ids "
            "(convert colour masks with a colour->class map first)",
        )
    if mask.dtype != np.uint8:
        raise DatasetError(path, f"mask is {mask.dtype}; expected uint8 class ids")
    return mask


def write_image(path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95) -> None:
    bgr = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if str(path).lower().endswith((".jpg", ".jpeg")) else []
    if not cv2.imwrite(str(path), np.ascontiguousarray(bgr), params):
        raise OSError(f"{path}: could not write image")


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"{path}: a mask must be 2-D uint8, got {mask.dtype} {mask.shape}")
    if not cv2.imwrite(str(path), mask):
        raise OSError(f"{path}: could not write mask")
