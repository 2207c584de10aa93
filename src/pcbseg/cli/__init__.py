"""Command-line entry points, one Hydra app per module.

A user-facing error ends a command with its one-paragraph message and exit code 1, no traceback;
``PCBSEG_DEBUG=1`` re-raises it so developers get the full traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from pcbseg.inference import TiledPredictor
    from pcbseg.models.module import SegmentationModule


def debugging() -> bool:
    return os.environ.get("PCBSEG_DEBUG", "") not in ("", "0")


def exit_with(log: logging.Logger, error: BaseException) -> NoReturn:
    """Log ``error`` as the user's message and exit 1 (or re-raise it under ``PCBSEG_DEBUG=1``)."""
    if debugging():
        raise error
    log.error("%s", error)
    sys.exit(1)


def predictor_from_config(module: SegmentationModule, cfg: DictConfig) -> TiledPredictor:
    """The tiled predictor ``pcbseg-predict`` and ``pcbseg-eval`` build from their shared settings."""
    return module.predictor(tile=cfg.tile, overlap=cfg.overlap, batch_size=cfg.batch_size, blend=cfg.blend,
                            tta=list(cfg.tta), device=cfg.device, precision=str(cfg.precision),
                            max_band_width=cfg.max_band_width, max_whole_px=cfg.get("max_whole_px"),
                            scale=cfg.get("scale"), px_per_mm=cfg.get("px_per_mm"),
                            adapt_bn=cfg.get("adapt_bn") or 0.0)
