"""The Python API: build what ``pcbseg-train`` builds, and load a trained model to predict with.

Both CLIs and notebooks go through these functions, so a model or datamodule made here is wired
exactly as a command-line run wires it.

Example:
    >>> import tempfile, pathlib, pcbseg
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "synth"
    >>> dm, model = pcbseg.build(["model.weights=null", f"data.root={root}", "data.synth.num_boards=4",
    ...                           "data.synth.size=64", "data.crop_size=64", "data.num_workers=0"])
    >>> model.taxonomy.names[:3], model.mean
    (('background', 'trace', 'via'), (0.5, 0.5, 0.5))
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from pcbseg.models.module import SegmentationModule


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names the file and says why and what to do."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A pcbseg checkpoint's contents, read without running any code stored in it (``weights_only``).

    Raises :class:`CheckpointError` for a missing, truncated, foreign or unsafe file.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found. Trained runs keep theirs in "
                              "<run folder>/checkpoints/best.ckpt and last.ckpt.")
    if not path.is_file():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file (try {path}/checkpoints/best.ckpt)")
    unreadable = (f"{path}: cannot be read as a PyTorch checkpoint ({path.stat().st_size} bytes: truncated, still "
                  "being written, or another kind of file). Use a .ckpt written by pcbseg-train.")
    if not zipfile.is_zipfile(path):  # every checkpoint torch.save has written since PyTorch 1.6 is a zip archive
        raise CheckpointError(unreadable)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" in str(e):
            raise CheckpointError(
                f"{path}: holds Python objects other than tensors and plain values (it could run code when "
                "loaded), so it was refused. pcbseg checkpoints never need that; use one written by pcbseg-train."
            ) from None
        raise CheckpointError(f"{path}: a PyTorch archive whose contents the safe (weights-only) loader cannot read, so "
                              "it was refused: loading it any other way could run code. Use a .ckpt written by "
                              "pcbseg-train.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError):
        raise CheckpointError(unreadable) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: a PyTorch file but not a Lightning checkpoint (no 'state_dict'); "
                              "for encoder weights use model.weights=<file> instead")
    hp = ckpt.get("hyper_parameters") or {}
    if "arch" not in hp or "encoder" not in hp or "num_classes" not in hp:
        raise CheckpointError(f"{path}: a Lightning checkpoint, but not of a pcbseg model (no arch/encoder/num_classes "
                              "in its hyper_parameters)")
    return ckpt


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def load_model(ckpt: str | Path, device: str | torch.device = "cpu") -> SegmentationModule:
    """A trained model, in eval mode, that knows its classes, colours, normalisation and tiles.

    Pretrained encoder weights are not read again (the checkpoint holds the trained ones), so this
    works offline for any encoder. ``model.predict(image_or_path)`` gives a class mask.

    Example:
        >>> model = load_model("logs/train/runs/<run>/checkpoints/best.ckpt")   # doctest: +SKIP
        >>> mask = model.predict("board.jpg", tta=["hflip"])                     # doctest: +SKIP
    """
    path = Path(ckpt).expanduser()
    contents = read_checkpoint(path)
    hp = dict(contents["hyper_parameters"])
    hp["weights"] = None
    hp.pop("_instantiator", None)
    quiet = logging.getLogger("pcbseg.models.weights")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # "weights from none" would mislead: the trained weights load next
    try:
        module = SegmentationModule(**hp)
    except TypeError as e:
        raise CheckpointError(f"{path}: its settings do not fit this pcbseg version ({e})") from None
    finally:
        quiet.setLevel(level)
    try:
        module.load_state_dict(contents["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: its weights do not fit the model its settings describe ({_first_line(e)})") from None
    return module.to(device).eval()


def build(cfg: DictConfig | Sequence[str] | None = None) -> tuple[Any, SegmentationModule]:
    """``(datamodule, model)`` as ``pcbseg-train`` builds them, from a composed config or overrides.

    The model takes its classes and colours from the dataset; the datamodule gets the augmentation
    the config names. Normalisation lives in the model (its ``forward`` takes RGB in [0, 1]).
    """
    from hydra.utils import instantiate

    from pcbseg.config import compose

    if cfg is None or not isinstance(cfg, DictConfig):
        cfg = compose("train", list(cfg or []))
    augment = instantiate(cfg.augment) if cfg.get("augment") else None
    datamodule = instantiate(cfg.data, augment=augment, seed=cfg.get("seed"))
    taxonomy = datamodule.peek_taxonomy()
    # The dataset owns its classes and the scale its images are read at; the model records both.
    ppm = getattr(datamodule, "px_per_mm", None)
    model = instantiate(cfg.model, num_classes=taxonomy.num_classes, class_names=list(taxonomy.names),
                        ignore_index=taxonomy.ignore_index, class_colours=[list(c) for c in taxonomy.colors],
                        input_scale=datamodule.scale, input_px_per_mm=ppm * datamodule.scale if ppm else None,
                        input_scale_jitter=getattr(datamodule, "scale_jitter", None))
    return datamodule, model
