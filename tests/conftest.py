"""Shared fixtures: tiny datasets written once per session, copied where a test mutates them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cli_runner import run_cli

# Tests must never reach a model hub: an attempt fails fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only 12-board synthetic dataset at 96 px; copy it before changing anything."""
    from pcbseg.data.synth import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synth") / "ds", num_boards=12, size=96, seed=7, workers=1)


@pytest.fixture
def dataset(synth_root: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the session dataset."""
    return Path(shutil.copytree(synth_root, tmp_path / "ds"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Path:
    """The folder of a real (one tiny epoch) pcbseg-train run on the session dataset."""
    tmp = tmp_path_factory.mktemp("trained")
    args = ["data=folder", f"data.root={synth_root}", "data.crop_size=64", "data.batch_size=4", "data.num_workers=0",
            "trainer.max_epochs=1", "~callbacks.progress_bar", "hydra.run.dir=run"]
    result = run_cli("pcbseg.cli.train", *args, cwd=tmp)
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp / "run"


@pytest.fixture(scope="session")
def checkpoint(trained_run: Path) -> Path:
    return trained_run / "checkpoints" / "best.ckpt"
