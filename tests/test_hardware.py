"""bfloat16 where the CPU has it natively, float32 elsewhere: detection, the fallback, and inference under it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcbseg.hardware import cpu_has_bf16, cpu_precision, inference_dtype


def test_flags_decide_and_the_environment_overrides(monkeypatch: pytest.MonkeyPatch):
    assert cpu_has_bf16("processor : 0\nflags : fpu avx512f amx_bf16 amx_tile\n")
    assert not cpu_has_bf16("processor : 0\nflags : fpu sse4_2 avx2 avx512f\n")  # AVX-512 alone emulates bf16
    monkeypatch.setenv("PCBSEG_CPU_BF16", "0")
    assert not cpu_has_bf16() and cpu_precision() == "32-true"
    assert inference_dtype("auto", "cpu") is None and inference_dtype("auto", "cuda:0") == "bf16"
    monkeypatch.setenv("PCBSEG_CPU_BF16", "1")
    assert cpu_has_bf16() and cpu_precision() == "bf16-mixed" and inference_dtype("auto", "cpu") == "bf16"
    assert inference_dtype("32", "cpu") is None and inference_dtype("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="auto, bf16 or 32"):
        inference_dtype("fp16", "cpu")


def test_bf16_prediction_agrees_with_float32(checkpoint: Path, synth_root: Path):
    import pcbseg

    model = pcbseg.load_model(checkpoint)
    image = sorted((synth_root / "images").iterdir())[0]
    fp32 = model.predict(image, precision="32", return_probs=True).probs.astype(np.float32)
    bf16 = model.predict(image, precision="bf16", return_probs=True).probs.astype(np.float32)
    # a one-epoch model is unsure of many pixels, so argmax flips on near-ties; probabilities stay close
    assert bf16.shape == fp32.shape and np.abs(bf16 - fp32).mean() < 0.02 and not np.array_equal(bf16, fp32)


def test_trainer_cpu_trains_in_bf16_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch):
    from pcbseg.config import compose

    monkeypatch.setenv("PCBSEG_CPU_BF16", "0")  # a CPU without native bfloat16
    assert compose("train", ["trainer=cpu"]).trainer.precision == "32-true"
    monkeypatch.setenv("PCBSEG_CPU_BF16", "1")
    assert compose("train", ["trainer=cpu"]).trainer.precision == "bf16-mixed"
    assert compose("train", ["trainer=cpu", "trainer.precision=32-true"]).trainer.precision == "32-true"
