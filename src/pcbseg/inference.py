"""Prediction on images of any size: sliding-window tiles, blended logits, optional test-time augmentation.

Tiles of ``tile`` pixels overlap by ``overlap``; each tile's logits are weighted by a smooth window
(Gaussian by default) that is highest in the tile's centre, where the network sees the most
context, so seams do not show. Logits are accumulated in a rolling band one tile tall: rows are
finished (argmax, probabilities) as soon as no later tile touches them. Images wider than
``max_band_width`` go in vertical stripes, so the accumulator never exceeds one tile by
``max_band_width``: memory is bounded by that and the tile batch, not by the image. TTA averages
logits over flips and 90° rotations, undone before blending. With ``scale`` the image is resized
first (as the model's training images were) and the logits are resized back, bilinearly, to the
image's own pixels before the argmax: masks always come out at the size of the photo.

Example:
    >>> import numpy as np, torch
    >>> net = torch.nn.Conv2d(3, 4, 1)
    >>> pred = TiledPredictor(net, num_classes=4, tile=64, overlap=16)
    >>> out = pred.predict(np.zeros((100, 150, 3), np.uint8))
    >>> out.mask.shape, out.mask.dtype.name
    ((100, 150), 'uint8')
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

Forward = Callable[[torch.Tensor], torch.Tensor]
# Boards within this factor of the zooms a model was trained at are predicted without a warning.
SCALE_TOLERANCE = 1.5


@dataclass
class Prediction:
    mask: np.ndarray  # HxW uint8 class ids
    probs: np.ndarray | None = None  # CxHxW float16 softmax probabilities, if asked for
    logits: np.ndarray | None = None  # CxHxW float32 blended logits, if asked for


def window(tile: int, kind: str = "gaussian") -> np.ndarray:
    """A tile x tile blending weight, strictly positive so every pixel is covered."""
    if kind == "gaussian":
        x = np.arange(tile, dtype=np.float32) - (tile - 1) / 2
        w = np.exp(-0.5 * (x / (tile / 8)) ** 2)  # sigma = tile/8 (as MONAI): tile edges, which lack context, barely count
    elif kind == "linear":
        w = 1 - np.abs(np.linspace(-1, 1, tile, dtype=np.float32))
    elif kind == "uniform":
        w = np.ones(tile, np.float32)
    else:
        raise ValueError(f"unknown blend window {kind!r}: gaussian, linear or uniform")
    w = np.maximum(w, 1e-3)
    return np.outer(w, w).astype(np.float32)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``length`` with ``tile``-long windows overlapping by at least ``overlap``.

    >>> tile_starts(1000, 512, 64)
    [0, 448, 488]
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than tile {tile}")
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)  # the last tile ends at the border instead of hanging over it
    return starts


def predict_scale(trained_scale: float = 1.0, trained_px_per_mm: float | None = None,
                  jitter: Sequence[float] | None = None, scale: float | None = None,
                  px_per_mm: float | None = None) -> tuple[float, str | None]:
    """The factor to resize a photo by before predicting, and a warning if the model never saw boards that size.

    ``scale`` is used as given; else ``px_per_mm`` (the photo's) is brought to the ``trained_px_per_mm``
    the network saw in training; else the photo is assumed to be at the training images' px/mm and
    resized by ``trained_scale``. The warning comes when the zoom the network would see lies outside
    the trained zooms (``jitter`` around the trained one) by more than ``SCALE_TOLERANCE``.

    Example:
        >>> predict_scale(1.0, trained_px_per_mm=15.0, px_per_mm=30.0)
        (0.5, None)
        >>> predict_scale(0.5, trained_px_per_mm=7.5, scale=2.0)[1][:44]
        'scale=2 shows the network boards at 4 times '
    """
    if px_per_mm is not None and not (isinstance(px_per_mm, (int, float)) and px_per_mm > 0):
        raise ValueError(f"px_per_mm={px_per_mm!r}: must be the photo's pixels per millimetre, a positive number")
    if scale is None and px_per_mm is not None:
        if trained_px_per_mm is None:
            raise ValueError(f"px_per_mm={px_per_mm:g} was given, but the model does not know the px/mm it was trained "
                             "at (it was trained without data.px_per_mm): pass scale= instead")
        scale = trained_px_per_mm / px_per_mm
    scale = trained_scale if scale is None else float(scale)
    lo, hi = (float(jitter[0]), float(jitter[1])) if jitter else (1.0, 1.0)
    if px_per_mm is not None and trained_px_per_mm is not None:
        seen, low, high = px_per_mm * scale, trained_px_per_mm * lo, trained_px_per_mm * hi
        if not low / SCALE_TOLERANCE <= seen <= high * SCALE_TOLERANCE:
            return scale, (f"the photo at {px_per_mm:g} px/mm (given) would reach the network at {seen:.3g} px/mm, "
                           f"but it was trained at {low:.3g}-{high:.3g} px/mm: expect poor masks; drop scale= so "
                           "px_per_mm= brings it to the trained size")
        return scale, None
    zoom = scale / trained_scale  # relative to the training images, whose px/mm the photo is assumed to have
    if not lo / SCALE_TOLERANCE <= zoom <= hi * SCALE_TOLERANCE:
        where = f" ({trained_px_per_mm / trained_scale:g} px/mm)" if trained_px_per_mm else ""
        return scale, (f"scale={scale:g} shows the network boards at {zoom:.3g} times the size it was trained on, "
                       f"assuming the photo has the training images' px/mm{where}; trained zooms "
                       f"{lo:g}-{hi:g}: expect poor masks, or give px_per_mm= to resize by the photo's own")
    return scale, None


def no_board_note(image: np.ndarray, edge: float = 0.25, min_share: float = 0.001) -> str | None:
    """Why ``image`` holds no board to segment, or None: almost no edges (a blank sheet, a lens cap, a white-out).

    Measured on the grey image shrunk to at most 512 px: the share of pixels whose Sobel gradient
    exceeds ``edge`` (intensity in [0, 1]). Sensor noise and vignetting stay far below it; a board's
    traces, pads and print cross it everywhere. Other scenes without a board are left to the model.

    Example:
        >>> no_board_note(np.full((300, 400, 3), 200, np.uint8))[:31]
        'no board found: 0.00% of pixels'
        >>> no_board_note((np.indices((300, 400)).sum(0) // 8 % 2 * 255).astype(np.uint8)[..., None].repeat(3, 2)) is None
        True
    """
    h, w = image.shape[:2]
    f = min(1.0, 512 / max(h, w, 1))
    grey = image.astype(np.float32).mean(axis=2) / 255 if image.ndim == 3 else image.astype(np.float32) / 255
    if f < 1:
        grey = cv2.resize(grey, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    if min(grey.shape) < 3:
        return f"no board found: the image is {w}x{h} px"
    mag = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    share = float((mag > edge).mean())
    if share >= min_share:
        return None
    return f"no board found: {share:.2%} of pixels are edges (a board has far more), so the mask is all background"


TTA_TRANSFORMS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]] = {
    "identity": (lambda x: x, lambda y: y),
    "hflip": (lambda x: x.flip(-1), lambda y: y.flip(-1)),
    "vflip": (lambda x: x.flip(-2), lambda y: y.flip(-2)),
    "rot90": (lambda x: x.rot90(1, (-2, -1)), lambda y: y.rot90(-1, (-2, -1))),
    "rot180": (lambda x: x.rot90(2, (-2, -1)), lambda y: y.rot90(-2, (-2, -1))),
    "rot270": (lambda x: x.rot90(3, (-2, -1)), lambda y: y.rot90(-3, (-2, -1))),
}


class TiledPredictor:
    """Run a segmentation network over a whole image, tile by tile.

    Args:
        model: maps an RGB batch in [0, 1], (N,3,h,w), to (N,C,h,w) logits: a
            :class:`~pcbseg.models.module.SegmentationModule` (it normalises for its encoder
            itself), another ``nn.Module``, or a callable such as an exported ONNX model.
        num_classes: C.
        tile: tile side in pixels (a multiple of the encoder stride, 32).
        overlap: minimum overlap between neighbouring tiles.
        batch_size: tiles per forward pass: this, not the image, bounds the network's memory.
        blend: ``gaussian``, ``linear`` or ``uniform`` window.
        tta: names from ``TTA_TRANSFORMS`` to average (``identity`` is always included).
        device: where tiles are sent.
        max_band_width: images wider than this are predicted in stripes of this many columns (with the
            tiles at stripe edges computed twice), which keeps memory flat however large the image.
        dtype: ``"bf16"`` runs the network under bfloat16 autocast (logits are blended in float32);
            None is float32.
        scale: resize the image by this before predicting (the ``data.scale`` the model was trained
            at); results are resized back to the image's size.
        max_whole_px: an image of at most this many pixels (padded to the stride) goes through the
            network whole, in one pass; default ``batch_size * tile**2``, the memory of one batch of
            tiles. A 640x480 frame is then one pass instead of two overlapping 512 px tiles (0.6x the
            pixels), seen with all its context. 0: tile every image larger than a tile.
        adapt_bn: share of each image's own BatchNorm statistics (0-1): before an image is predicted,
            one extra pass over it measures every BatchNorm layer's mean and variance there, and the
            layers use ``adapt_bn`` x those + (1 - ``adapt_bn``) x the training set's (AdaBN: a photo
            whose colours and contrast the training images lacked is normalised as training images
            were). The model's own statistics are put back after each image. 0: off.
    """

    def __init__(self, model: nn.Module | Forward, num_classes: int, tile: int = 512, overlap: int = 128,
                 batch_size: int = 4, blend: str = "gaussian", tta: Sequence[str] = (),
                 device: str | torch.device = "cpu", pad_divisor: int = 32, max_band_width: int = 4096,
                 dtype: str | None = None, scale: float = 1.0, max_whole_px: int | None = None,
                 adapt_bn: float = 0.0):
        if tile % pad_divisor:
            raise ValueError(f"tile={tile} must be a multiple of {pad_divisor} (the encoder stride)")
        unknown = [t for t in tta if t not in TTA_TRANSFORMS]
        if unknown:
            raise ValueError(f"unknown TTA transform(s) {unknown}; choose from {list(TTA_TRANSFORMS)}")
        self.model, self.num_classes = model, num_classes
        self.tile, self.overlap, self.batch_size = tile, overlap, batch_size
        self.weight = torch.from_numpy(window(tile, blend))
        self.tta = ["identity", *[t for t in tta if t != "identity"]]
        self.device = torch.device(device)
        self.pad_divisor = pad_divisor
        self.max_band_width = max_band_width
        if dtype not in (None, "bf16"):
            raise ValueError(f"dtype={dtype!r}: bf16 or None (float32)")
        self.dtype = dtype
        if not 0.05 <= scale <= 8:
            raise ValueError(f"scale={scale}: must be in [0.05, 8]")
        self.scale = float(scale)
        if max_whole_px is not None and (isinstance(max_whole_px, bool) or not isinstance(max_whole_px, int)
                                         or max_whole_px < 0):
            raise ValueError(f"max_whole_px={max_whole_px!r}: a number of pixels >= 0 (0: always tile), or null")
        self.max_whole_px = batch_size * tile * tile if max_whole_px is None else max_whole_px
        if isinstance(adapt_bn, bool) or not isinstance(adapt_bn, (int, float)) or not 0 <= adapt_bn <= 1:
            raise ValueError(f"adapt_bn={adapt_bn!r}: the share of each image's own BatchNorm statistics, 0 to 1")
        if adapt_bn and not batchnorm_layers(model):
            raise ValueError(f"adapt_bn={adapt_bn}: the model has no BatchNorm layers to adapt "
                             "(an exported ONNX model cannot be adapted: use the torch backend)")
        self.adapt_bn = float(adapt_bn)

    @torch.no_grad()
    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        x = (batch.float() / 255).to(self.device)
        out = None
        for name in self.tta:
            fwd, inv = TTA_TRANSFORMS[name]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == "bf16"):
                y = inv(self.model(fwd(x)).float())
            out = y if out is None else out + y
        return (out / len(self.tta)).cpu()

    def _tiles(self, image: np.ndarray, y: int, xs: list[int]) -> Iterator[tuple[list[int], torch.Tensor]]:
        t = self.tile
        for i in range(0, len(xs), self.batch_size):
            chunk = xs[i:i + self.batch_size]
            crops = [image[y:y + t, x:x + t] for x in chunk]
            yield chunk, torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)

    def predict(self, image: np.ndarray, return_probs: bool = False, return_logits: bool = False) -> Prediction:
        """``image``: HxWx3 uint8 RGB. Returns the class mask (and probabilities/logits if asked) at its size."""
        if self.scale == 1:
            with self._adapted(image):
                return self._predict(image, return_probs, return_logits)
        h, w = image.shape[:2]
        size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR)
        with self._adapted(small):
            pred = self._predict(small, return_probs=False, return_logits=True)
        return _upsample(pred.logits, (h, w), return_probs, return_logits)

    @contextmanager
    def _adapted(self, image: np.ndarray) -> Iterator[None]:
        """BatchNorm statistics blended with ``image``'s own (``adapt_bn``) while the block runs."""
        if not self.adapt_bn:
            yield
            return
        layers = batchnorm_layers(self.model)
        if not layers:  # the model was swapped for one without them (an ONNX forward) after construction
            raise ValueError(f"adapt_bn={self.adapt_bn}: the model has no BatchNorm layers to adapt")
        saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum, m.training)
                 for m in layers]
        try:
            with torch.no_grad():
                for m in layers:
                    m.reset_running_stats()
                    m.momentum = None  # a plain average over the image's batches, whatever their number
                    m.train()
                for batch in self._stat_batches(image):
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == "bf16"):
                        self.model((batch.float() / 255).to(self.device))
                for m, (mean, var, *_) in zip(layers, saved, strict=True):
                    m.eval()
                    m.running_mean.lerp_(mean.to(m.running_mean), 1 - self.adapt_bn)
                    m.running_var.lerp_(var.to(m.running_var), 1 - self.adapt_bn)
            yield
        finally:
            with torch.no_grad():
                for m, (mean, var, count, momentum, training) in zip(layers, saved, strict=True):
                    m.running_mean.copy_(mean)
                    m.running_var.copy_(var)
                    m.num_batches_tracked.copy_(count)
                    m.momentum = momentum
                    m.train(training)

    def _stat_batches(self, image: np.ndarray) -> Iterator[torch.Tensor]:
        """The image as the prediction pass will see it: whole, or in non-overlapping tiles (the statistics
        need every pixel once, not the blend's overlap)."""
        if self._whole(image):
            yield self._whole_batch(image)
            return
        image = self._pad_to_tile(image)
        xs = tile_starts(image.shape[1], self.tile, 0)
        for y in tile_starts(image.shape[0], self.tile, 0):
            for _, batch in self._tiles(image, y, xs):
                yield batch

    def _whole(self, image: np.ndarray) -> bool:
        """Whether ``image`` goes through the network in one pass (see ``max_whole_px``)."""
        h, w = image.shape[:2]
        d = self.pad_divisor
        return (h <= self.tile and w <= self.tile) or (h + -h % d) * (w + -w % d) <= self.max_whole_px

    def _pad_to_tile(self, image: np.ndarray) -> np.ndarray:
        """An image smaller than a tile on one side, padded (reflected) to a tile there."""
        h, w = image.shape[:2]
        ph, pw = max(0, self.tile - h), max(0, self.tile - w)
        if not (ph or pw):
            return image
        return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")

    def _predict(self, image: np.ndarray, return_probs: bool = False, return_logits: bool = False) -> Prediction:
        h0, w0 = image.shape[:2]
        t, c = self.tile, self.num_classes
        if self._whole(image):  # a single pass, padded only to the encoder stride
            logits = self._whole_logits(image)
            return Prediction(mask=logits.argmax(0).numpy().astype(np.uint8),
                              probs=logits.softmax(0).numpy().astype(np.float16) if return_probs else None,
                              logits=logits.numpy() if return_logits else None)
        image = self._pad_to_tile(image)
        h, w = image.shape[:2]
        ys, xs = tile_starts(h, t, self.overlap), tile_starts(w, t, self.overlap)
        out = Prediction(
            mask=np.empty((h, w), np.uint8),
            probs=np.empty((c, h, w), np.float16) if return_probs else None,
            logits=np.empty((c, h, w), np.float32) if return_logits else None,
        )
        # Wide images go in vertical stripes, each with every tile that touches its columns, so a
        # stripe's pixels get exactly the blend they would get in one pass, and memory stays flat.
        for a in range(0, w, self.max_band_width):
            b = min(w, a + self.max_band_width)
            self._stripe(image, ys, [x for x in xs if x < b and x + t > a], a, b, out)
        return Prediction(
            mask=out.mask[:h0, :w0],
            probs=out.probs[:, :h0, :w0] if out.probs is not None else None,
            logits=out.logits[:, :h0, :w0] if out.logits is not None else None,
        )

    def _stripe(self, image: np.ndarray, ys: list[int], xs: list[int], a: int, b: int, out: Prediction) -> None:
        """Blend the tiles at (ys x xs) and write columns [a, b) of the result into ``out``.

        Every buffer is allocated once per stripe and reused, so memory does not creep up with
        the number of tiles (repeated large temporaries fragment the C heap).
        """
        t, c, h = self.tile, self.num_classes, image.shape[0]
        left, width = xs[0], xs[-1] + t - xs[0]
        lo, hi = a - left, b - left
        acc, spare = torch.zeros(c, t, width), torch.zeros(c, t, width)  # rows [top, top + t) of blended logits
        wt, wt_spare = torch.zeros(1, t, width), torch.zeros(1, t, width)
        blended = torch.empty(c, t, b - a)
        labels = torch.empty(t, b - a, dtype=torch.int64)
        top = 0

        def flush(upto: int) -> None:
            """Finish rows [top, upto): no later tile reaches above ``upto``."""
            nonlocal top, acc, spare, wt, wt_spare
            n = upto - top
            if n <= 0:
                return
            view = blended[:, :n]
            torch.div(acc[:, :n, lo:hi], wt[:, :n, lo:hi], out=view)
            torch.argmax(view, 0, out=labels[:n])
            out.mask[top:upto, a:b] = labels[:n].numpy()
            if out.probs is not None:
                out.probs[:, top:upto, a:b] = view.softmax(0).numpy()
            if out.logits is not None:
                out.logits[:, top:upto, a:b] = view.numpy()
            # Move the unfinished rows to the top of the spare buffers and swap.
            spare[:, :t - n].copy_(acc[:, n:])
            spare[:, t - n:].zero_()
            wt_spare[:, :t - n].copy_(wt[:, n:])
            wt_spare[:, t - n:].zero_()
            acc, spare, wt, wt_spare = spare, acc, wt_spare, wt
            top = upto

        for y in ys:
            flush(y)
            off = y - top
            for chunk, batch in self._tiles(image, y, xs):
                logits = self._forward(batch)
                for x, logit in zip(chunk, logits, strict=True):
                    acc[:, off:off + t, x - left:x - left + t].addcmul_(logit, self.weight)
                    wt[:, off:off + t, x - left:x - left + t] += self.weight
        flush(h)

    def _whole_batch(self, image: np.ndarray) -> torch.Tensor:
        """``image`` as a batch of one, padded (reflected) to the encoder stride."""
        h, w = image.shape[:2]
        d = self.pad_divisor
        padded = np.pad(image, ((0, (-h) % d), (0, (-w) % d), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
        return torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None]

    def _whole_logits(self, image: np.ndarray) -> torch.Tensor:
        h, w = image.shape[:2]
        return self._forward(self._whole_batch(image))[0, :, :h, :w]

    @torch.no_grad()
    def predict_whole(self, image: np.ndarray) -> np.ndarray:
        """One forward pass over the whole image (padded to the stride): the reference for seams."""
        return self._whole_logits(image).argmax(0).numpy().astype(np.uint8)


def batchnorm_layers(model: object) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer that keeps running statistics in ``model`` (none for a plain callable)."""
    if not isinstance(model, nn.Module):
        return []
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None]


def _upsample(logits: np.ndarray, size: tuple[int, int], return_probs: bool, return_logits: bool) -> Prediction:
    """Resize C x h x w logits bilinearly to ``size`` and take the argmax, one class plane at a time
    (two full-size planes in memory besides what was asked for)."""
    h, w = size
    best = np.full((h, w), -np.inf, np.float32)
    mask = np.zeros((h, w), np.uint8)
    full = np.empty((len(logits), h, w), np.float32) if (return_probs or return_logits) else None
    for c, plane in enumerate(logits):
        up = cv2.resize(plane, (w, h), interpolation=cv2.INTER_LINEAR)
        better = up > best
        mask[better], best[better] = c, up[better]
        if full is not None:
            full[c] = up
    probs = torch.from_numpy(full).softmax(0).numpy().astype(np.float16) if return_probs else None
    return Prediction(mask=mask, probs=probs, logits=full if return_logits else None)
