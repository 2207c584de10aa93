"""pcbseg-train end to end on tiny boards: outputs, reproducibility, resume, NaN guard, DDP, tuning."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from pcbseg.cli.train import train
from pcbseg.config import compose


def _tiny(root: Path) -> list[str]:
    return [
        "data=folder", f"data.root={root}", "data.crop_size=64", "data.batch_size=4", "data.num_workers=0",
        "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "model.freeze_epochs=1", "~callbacks.progress_bar",
    ]


def _run_in_process(tmp_path: Path, root: Path, *overrides: str) -> tuple[dict, Path]:
    cfg = compose("train", [*_tiny(root), *overrides], return_hydra_config=True)
    out = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    out.mkdir()
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.log_dir = str(tmp_path / "logs")
    HydraConfig().set_config(cfg)
    return train(cfg), out


def _cli(tmp_path: Path, *overrides: str, timeout: int = 300, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "pcbseg.cli.train", *overrides]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def test_run_writes_config_checkpoints_metrics_and_summary(tmp_path: Path, synth_root: Path):
    summary, out = _run_in_process(tmp_path, synth_root)
    assert (out / "checkpoints" / "best.ckpt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    assert (out / "metrics.csv").is_file()
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    expected = ("train/loss_epoch", "val/loss", "val/mIoU", "val/pixel_error_rate", "val/dice", "train/mIoU", "val/iou_via")
    for key in expected:
        assert key in header, key
    written = json.loads((out / "summary.json").read_text())
    assert written == json.loads(json.dumps(summary))
    assert Path(written["best_checkpoint"]) == (out / "checkpoints" / "best.ckpt").resolve()
    val = written["val"]
    assert 0 <= val["mIoU"] <= 1 and 0 <= val["pixel_error_rate"] <= 1
    assert set(val["per_class_iou"]) == {"background", "trace", "via", "pad", "component", "hole", "silkscreen"}
    assert written["epochs"] == 2 and written["wall_time_s"] > 0
    # The best checkpoint loads without unpickling arbitrary objects.
    ckpt = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["arch"] == "unet"


def test_encoder_is_frozen_first_then_fine_tuned(tmp_path: Path, synth_root: Path):
    _, out = _run_in_process(tmp_path, synth_root, "trainer.max_epochs=1", "callbacks.model_checkpoint.save_last=false")
    from pcbseg.models.weights import resolve_weights

    pretrained = resolve_weights("tu-tf_efficientnet_lite0", "imagenet")[1]
    after_frozen = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    enc = {k.removeprefix("model.encoder.model."): v for k, v in after_frozen.items() if k.startswith("model.encoder.model.")}
    assert all(torch.equal(v, pretrained[k]) for k, v in enc.items()), "encoder (BatchNorm stats too) changed while frozen"
    _, out2 = _run_in_process(tmp_path, synth_root, "trainer.max_epochs=2")
    later = torch.load(out2 / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert not torch.equal(later["model.encoder.model.conv_stem.weight"], pretrained["conv_stem.weight"])


def test_same_seed_same_metrics_on_cpu(tmp_path: Path, synth_root: Path):
    a, _ = _run_in_process(tmp_path, synth_root, "seed=3", "augment=heavy")
    b, _ = _run_in_process(tmp_path, synth_root, "seed=3", "augment=heavy")
    c, _ = _run_in_process(tmp_path, synth_root, "seed=4", "augment=heavy")
    assert a["val"] == b["val"]
    assert a["val"]["mIoU"] != c["val"]["mIoU"]


def test_nan_loss_stops_with_a_clear_message_and_no_checkpoint(tmp_path: Path, synth_root: Path):
    result = _cli(tmp_path, *_tiny(synth_root), "model.loss.ce=nan", "hydra.run.dir=nanrun")
    assert result.returncode == 1
    assert "loss is nan" in result.stdout + result.stderr
    assert not list((tmp_path / "nanrun").rglob("*.ckpt"))
    assert not (tmp_path / "nanrun" / "summary.json").exists()


def test_hub_encoder_offline_fails_fast_from_the_cli(tmp_path: Path, synth_root: Path):
    start = time.perf_counter()
    result = _cli(tmp_path, *_tiny(synth_root), "model.encoder=tu-resnet18")  # conftest sets HF_HUB_OFFLINE=1
    assert result.returncode == 1
    assert "tu-tf_efficientnet_lite0" in result.stdout + result.stderr
    assert time.perf_counter() - start < 60  # process start-up dominates; the check itself is sub-second


def test_finished_run_folder_is_never_overwritten(tmp_path: Path, synth_root: Path):
    first = _cli(tmp_path, *_tiny(synth_root), "trainer.max_epochs=1", "hydra.run.dir=done")
    assert first.returncode == 0, first.stderr[-2000:]
    before = (tmp_path / "done" / "summary.json").read_bytes()
    again = _cli(tmp_path, *_tiny(synth_root), "trainer.max_epochs=1", "hydra.run.dir=done")
    assert again.returncode == 1 and "finished run" in again.stdout + again.stderr
    assert (tmp_path / "done" / "summary.json").read_bytes() == before


def test_killed_run_resumes_to_the_same_epoch_count(tmp_path: Path, synth_root: Path):
    epochs = 4
    args = [*_tiny(synth_root), f"trainer.max_epochs={epochs}", "data.batch_size=2", "hydra.run.dir=killed"]
    proc = subprocess.Popen([sys.executable, "-m", "pcbseg.cli.train", *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    assert proc.poll() is None, "run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (tmp_path / "killed" / "summary.json").exists()
    stopped_at = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    assert stopped_at < epochs - 1
    resumed = _cli(tmp_path, *args[:-1], f"ckpt_path={last}", "hydra.run.dir=resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert summary["epochs"] == epochs and summary["resumed_from"] == str(last)


def test_ddp_with_two_cpu_processes(tmp_path: Path, synth_root: Path):
    result = _cli(tmp_path, *_tiny(synth_root), "trainer=ddp_sim", "trainer.max_epochs=1", "hydra.run.dir=ddp",
                  timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [p for p in tmp_path.iterdir() if p.is_dir() and p.name not in ("ddp",)]
    assert not [p for p in runs if (p / ".hydra").exists()], "a rank made its own run folder"
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["epochs"] == 1 and not math.isnan(summary["val"]["mIoU"])
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_lr_finder_saves_its_plot_and_uses_the_suggestion(tmp_path: Path, synth_root: Path):
    # The finder's steps come out of the run's epochs: 2 epochs x 10 single-image batches.
    summary, out = _run_in_process(tmp_path, synth_root, "tune.lr_find=true", "tune.num_training=18",
                                   "tune.early_stop_threshold=null", "data.batch_size=1", "trainer.max_epochs=2")
    assert (out / "lr_find.png").is_file()
    assert summary["lr"] != 3.0e-3


def test_tensorboard_logger_writes_events(tmp_path: Path, synth_root: Path):
    pytest.importorskip("tensorboard")
    _, out = _run_in_process(tmp_path, synth_root, "logger=tensorboard", "trainer.max_epochs=1")
    assert list((out / "tensorboard").rglob("events.out.tfevents.*")) and (out / "metrics.csv").is_file()


def test_mlflow_logger_uses_a_local_file_store(tmp_path: Path, synth_root: Path):
    pytest.importorskip("mlflow")
    _, out = _run_in_process(tmp_path, synth_root, "logger=mlflow", "trainer.max_epochs=1")
    store = tmp_path / "logs" / "mlruns"
    assert list(store.rglob("val/mIoU")) or list(store.rglob("*mIoU*")), f"no metric files under {store}"
    assert (out / "metrics.csv").is_file()


EXPERIMENTS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_one_batch(tmp_path: Path, synth_root: Path, experiment: str):
    # Sweep experiments run their first combination here: a plain run ignores hydra.sweeper.params.
    summary, _ = _run_in_process(tmp_path, synth_root, f"experiment={experiment}", "debug=fdr", "data.synth=null")
    assert summary["global_steps"] == 1
