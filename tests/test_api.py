"""The Python API (docs/api.md runs as written), checkpoints that cannot be used, and clean CLI errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pcbseg
from cli_runner import run_cli
from pcbseg.data.layout import read_image, read_mask
from pcbseg.taxonomy import load_classes

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_docs_api_walkthrough_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "api.md").read_text(), flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for block in blocks:
        exec(compile(block, str(DOCS / "api.md"), "exec"), scope)
    assert (tmp_path / "tiny.ckpt").is_file()
    assert scope["mask"].dtype == np.uint8


def test_loaded_model_knows_its_classes_colours_normalisation_and_tiles(checkpoint: Path, synth_root: Path):
    model = pcbseg.load_model(checkpoint)
    assert not model.training
    assert model.taxonomy.names[:2] == ("background", "trace")
    dataset = load_classes(synth_root / "classes.yaml")
    assert model.taxonomy.names == dataset.names and model.taxonomy.colors == dataset.colors
    assert model.mean == (0.5, 0.5, 0.5) and model.hparams.tile == 512
    image = sorted((synth_root / "images").iterdir())[0]
    mask = model.predict(image)
    assert mask.shape == read_image(image).shape[:2] and mask.max() < model.hparams.num_classes
    probs = model.predict(read_image(image), return_probs=True).probs.astype(np.float32)
    chosen = np.take_along_axis(probs, mask[None].astype(np.int64), 0)[0]
    assert (chosen >= probs.max(0) - 1e-3).all()  # float16 probabilities: ties within their precision


def test_predict_cli_and_model_predict_give_the_same_mask(tmp_path: Path, checkpoint: Path, synth_root: Path):
    image = sorted((synth_root / "images").iterdir())[1]
    result = subprocess.run([sys.executable, "-m", "pcbseg.cli.predict", f"ckpt_path={checkpoint}", f"input={image}",
                             f"output={tmp_path}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert np.array_equal(read_mask(tmp_path / f"{image.stem}_mask.png"), pcbseg.load_model(checkpoint).predict(image))


def test_build_wires_augmentation_classes_and_seed_like_pcbseg_train(synth_root: Path):
    dm, model = pcbseg.build(["data=folder", f"data.root={synth_root}", "augment=heavy", "seed=5",
                              "model.weights=null", "model=fpn"])
    assert dm.augment is not None and dm.seed == 5
    assert model.hparams.arch == "fpn"
    assert model.taxonomy.names == dm.peek_taxonomy().names and model.taxonomy.colors == dm.peek_taxonomy().colors


def _bad_checkpoints(tmp_path: Path, checkpoint: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    evil = tmp_path / "evil.ckpt"
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": {}, "hyper_parameters": Payload()}, evil)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"lr": 1}}, foreign)
    return {"text": (text, "cannot be read"), "truncated": (truncated, "truncated"), "evil": (evil, "refused"),
            "foreign": (foreign, "not of a pcbseg model"), "folder": (tmp_path, "folder"),
            "missing": (tmp_path / "nope.ckpt", "not found")}


def test_unusable_checkpoints_raise_checkpoint_error_and_run_nothing(tmp_path: Path, checkpoint: Path):
    for kind, (path, words) in _bad_checkpoints(tmp_path, checkpoint).items():
        with pytest.raises(pcbseg.CheckpointError, match=words) as err:
            pcbseg.load_model(path)
        assert str(path) in str(err.value), kind
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("tool", ["eval", "predict", "export"])
def test_clis_refuse_unusable_checkpoints_in_one_paragraph(tmp_path: Path, checkpoint: Path, synth_root: Path, tool: str):
    image = sorted((synth_root / "images").iterdir())[0]
    extra = {"eval": [], "predict": [f"input={image}", f"output={tmp_path / 'out'}"], "export": [f"output={tmp_path}/m.onnx"]}
    for kind, (path, words) in _bad_checkpoints(tmp_path, checkpoint).items():
        if kind in ("folder", "missing", "foreign"):
            continue  # the same code path as "text"; the API test covers their messages
        result = run_cli(f"pcbseg.cli.{tool}", f"ckpt_path={path}", *extra[tool], f"hydra.run.dir={tmp_path / 'run'}",
                         cwd=tmp_path)
        out = result.stdout + result.stderr
        assert result.returncode == 1, (kind, out[-2000:])
        assert words in out and str(path) in out, (kind, out[-2000:])
        assert "Traceback" not in out, (kind, out[-3000:])
    assert not (tmp_path / "PWNED").exists()


def test_pcbseg_debug_shows_the_traceback(tmp_path: Path):
    env = {**os.environ, "PCBSEG_DEBUG": "1"}
    result = subprocess.run([sys.executable, "-m", "pcbseg.cli.export", f"ckpt_path={tmp_path / 'none.ckpt'}"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert result.returncode != 0 and "CheckpointError" in result.stderr
