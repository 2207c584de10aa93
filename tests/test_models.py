"""Encoder weights, the shared architecture suite, losses, the fine-tuning schedule."""

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from pcbseg.models.losses import CombinedLoss
from pcbseg.models.module import ARCHITECTURES, SegmentationModule, schedule_factor
from pcbseg.models.weights import OFFLINE_WEIGHTS, WeightsError, load_timm_state, resolve_weights

LITE0 = "tu-tf_efficientnet_lite0"


def _packaged_state() -> dict[str, torch.Tensor]:
    _, state, info = resolve_weights(LITE0, "imagenet")
    assert info.source == f"package:{OFFLINE_WEIGHTS[LITE0][0]}"
    assert info.mean == (0.5, 0.5, 0.5) and info.std == (0.5, 0.5, 0.5)
    return state


def test_packaged_weights_map_onto_every_timm_key():
    state = _packaged_state()
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    expected = model.state_dict()
    assert set(state) == set(expected)
    assert all(state[k].shape == expected[k].shape for k in expected)
    model.load_state_dict(state, strict=True)


def test_pretrained_encoder_and_its_imagenet_head_recognise_a_real_photo():
    skimage_data = pytest.importorskip("skimage.data")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(_packaged_state(), strict=True)
    model.eval()
    photo = skimage_data.chelsea()  # Chelsea the cat, shipped inside scikit-image
    import cv2

    x = cv2.resize(photo, (224, 224), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    x = torch.from_numpy((x - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.no_grad():
        top5 = model(x).softmax(1).topk(5).indices[0].tolist()
    cats = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert top5[0] in cats, f"top-1 class {top5[0]} is not a cat; top-5 {top5}"


def test_segmentation_encoder_loads_the_packaged_weights_strictly():
    module = SegmentationModule(encoder=LITE0, weights="imagenet", num_classes=3)
    state = _packaged_state()
    loaded = module.encoder.model.state_dict()
    assert loaded and all(torch.equal(v, state[k]) for k, v in loaded.items())
    assert module.weights_source.startswith("package:")


def test_scratch_weights_differ_from_pretrained():
    module = SegmentationModule(encoder=LITE0, weights=None, num_classes=3)
    w = module.encoder.model.conv_stem.weight
    assert not torch.equal(w, _packaged_state()["conv_stem.weight"])


@pytest.mark.parametrize("naming", ["timm", "smp", "lightning"])
def test_local_weights_file_in_any_naming(tmp_path: Path, naming: str):
    source = SegmentationModule(encoder=LITE0, weights=None, num_classes=3)
    timm_state = source.encoder.model.state_dict()
    state = {
        "timm": timm_state,
        "smp": {f"encoder.model.{k}": v for k, v in timm_state.items()},
        "lightning": {"state_dict": {f"model.encoder.model.{k}": v for k, v in timm_state.items()}},
    }[naming]
    torch.save(state, tmp_path / "w.pth")
    module = SegmentationModule(encoder=LITE0, weights=str(tmp_path / "w.pth"), num_classes=3)
    assert torch.equal(module.encoder.model.conv_stem.weight, timm_state["conv_stem.weight"])
    assert module.weights_source == f"file:{tmp_path / 'w.pth'}"


def test_weights_file_for_another_encoder_is_refused_with_its_name(tmp_path: Path):
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "resnet.pth")
    with pytest.raises(WeightsError, match=r"resnet\.pth"):
        SegmentationModule(encoder=LITE0, weights=str(tmp_path / "resnet.pth"), num_classes=3)
    with pytest.raises(WeightsError, match="not found"):
        SegmentationModule(encoder=LITE0, weights=str(tmp_path / "missing.pth"), num_classes=3)


def test_hub_encoder_offline_fails_fast_and_says_what_works(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        SegmentationModule(encoder="tu-resnet18", weights="imagenet", num_classes=3)
    assert time.perf_counter() - start < 1.0
    msg = str(err.value)
    assert LITE0 in msg and "model.weights=" in msg and "tu-resnet18" in msg


def test_lukemelas_keys_need_an_efficientnet_encoder():
    with pytest.raises(WeightsError, match="tu-tf_efficientnet"):
        load_timm_state("resnet34", {"_blocks.0._bn1.weight": torch.zeros(1)}, "x.pth")


# One suite every architecture passes -------------------------------------------------------
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_suite(arch: str):
    torch.manual_seed(0)
    module = SegmentationModule(arch=arch, encoder=LITE0, weights="imagenet", num_classes=5, freeze_epochs=1)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 5, (2, 64, 64))
    y[:, :4] = 255
    logits = module(x)
    assert logits.shape == (2, 5, 64, 64)
    loss = module.loss_fn(logits, y)
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    module.frozen_steps = 5  # what configure_optimizers sets from freeze_epochs
    module._apply_freeze()
    assert module.encoder_frozen and not any(p.requires_grad for p in module.encoder.parameters())
    head = [p for n, p in module.named_parameters() if not n.startswith("model.encoder.")]
    assert head and all(p.requires_grad for p in head)


@pytest.mark.parametrize("weights", [{"ce": 1.0}, {"dice": 1.0}, {"focal": 1.0}, {"lovasz": 1.0}, {"ce": 1.0, "dice": 0.5}])
def test_losses_honour_ignore_index(weights: dict):
    loss = CombinedLoss(weights, ignore_index=255, class_weights=[1.0, 2.0, 1.0] if "ce" in weights else None)
    logits = torch.randn(2, 3, 16, 16)
    target = torch.randint(0, 3, (2, 16, 16))
    ignored = target.clone()
    ignored[:, :8] = 255
    changed = logits.clone()
    changed[:, :, :8] = 100.0  # wild logits where the target is ignored must not matter
    assert torch.isclose(loss(logits, ignored), loss(changed, ignored), atol=1e-5)


@pytest.mark.parametrize("name", ["ce", "dice", "focal", "lovasz"])
def test_every_loss_runs_under_bf16_autocast_and_backpropagates(name: str):
    """Training runs bf16-mixed on CPUs that have it: each loss must take the logits it gets there."""
    conv = torch.nn.Conv2d(3, 3, 1)
    loss = CombinedLoss({name: 1.0}, ignore_index=255)
    target = torch.randint(0, 3, (2, 16, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = conv(torch.randn(2, 3, 16, 16))
        value = loss(logits, target)
    assert logits.dtype == torch.bfloat16 and value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


def test_loss_config_errors():
    with pytest.raises(ValueError, match="unknown loss"):
        CombinedLoss({"bce": 1.0})
    with pytest.raises(ValueError, match="all loss weights are zero"):
        CombinedLoss({"ce": 0.0})


@pytest.mark.parametrize("kind", ["onecycle", "cosine"])
def test_schedule_warms_up_then_anneals(kind: str):
    f = [schedule_factor(s, 100, kind, 0.25) for s in range(100)]
    peak = int(np.argmax(f))
    assert 20 <= peak <= 26 and f[peak] == pytest.approx(1.0, abs=0.02)
    assert f[0] < 0.1 and f[-1] < 0.01
    assert all(a <= b + 1e-9 for a, b in itertools.pairwise(f[:peak + 1]))
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(f[peak:]))
