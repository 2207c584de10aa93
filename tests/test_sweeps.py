"""Sweeps: a grid multirun end to end, a failing run inside it, and the leaderboard."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from cli_runner import run_cli
from pcbseg.cli.sweep_report import main as sweep_report


def test_grid_multirun_with_a_failed_run_and_its_leaderboard(tmp_path: Path, synth_root: Path):
    args = [
        "-m", "data=folder", f"data.root={synth_root}", "data.crop_size=64", "data.batch_size=4", "data.num_workers=0",
        "trainer.max_epochs=1", "~callbacks.progress_bar", "hydra.sweep.dir=sweep",
        # lite0 works offline; resnet18 would need the hub, so that run fails at once (HF_HUB_OFFLINE=1)
        "model.encoder=tu-tf_efficientnet_lite0,tu-resnet18", "model=unet,fpn",
    ]
    result = run_cli("pcbseg.cli.train", *args, cwd=tmp_path)
    sweep = tmp_path / "sweep"
    runs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())
    assert [p.name for p in runs] == ["0", "1", "2", "3"], result.stderr[-2000:]
    statuses = {p.name: json.loads((p / "status.json").read_text())["status"] for p in runs}
    assert sorted(statuses.values()) == ["failed", "failed", "finished", "finished"], statuses
    for p in runs:  # each run has its own folder and, if it finished, exactly one checkpoint set
        if statuses[p.name] == "finished":
            assert sorted(c.name for c in (p / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert result.returncode != 0  # Hydra reports the failed jobs once every job has run

    assert sweep_report([str(sweep)]) == 0
    rows = list(csv.reader((sweep / "leaderboard.csv").open()))
    header, body = rows[0], rows[1:]
    assert len(body) == 4 and header[:6] == ["rank", "run", "overrides", "status", "val mIoU", "pixel error rate"]
    assert [r[3].split()[0] for r in body] == ["finished", "finished", "failed", "failed"]  # best first, failures last
    assert float(body[0][4]) >= float(body[1][4])
    assert "model=" in body[0][2] and "data.root" not in body[0][2]  # only what varies across the sweep
    assert "tu-tf_efficientnet_lite0" in body[2][3] or "hub" in body[2][3]  # the failure says why
    assert (sweep / "leaderboard.png").stat().st_size > 1000 and "base64" in (sweep / "leaderboard.html").read_text()

    # Re-running the same sweep skips the finished runs and tries the failed ones again.
    finished = [p for p in runs if statuses[p.name] == "finished"]
    stamps = {p: (p / "summary.json").stat().st_mtime_ns for p in finished}
    again = run_cli("pcbseg.cli.train", *args, cwd=tmp_path)
    assert "skipped" in again.stdout + again.stderr
    assert all((p / "summary.json").stat().st_mtime_ns == stamps[p] for p in finished)


def test_killed_run_shows_as_killed(tmp_path: Path):
    run = tmp_path / "sweep" / "0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    import socket

    (run / "status.json").write_text(json.dumps({"status": "running", "pid": 2**22 + 12345, "host": socket.gethostname()}))
    assert sweep_report([str(tmp_path / "sweep")]) == 0
    rows = list(csv.reader((tmp_path / "sweep" / "leaderboard.csv").open()))
    assert rows[1][3].startswith("killed")


def test_empty_sweep_folder_is_an_error(tmp_path: Path):
    assert sweep_report([str(tmp_path)]) == 1


def test_optuna_study_runs_trials_and_returns_the_metric(tmp_path: Path, synth_root: Path):
    args = [
        "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=1",
        "data=folder", f"data.root={synth_root}", "data.crop_size=64", "data.batch_size=4", "data.num_workers=0",
        "trainer.max_epochs=1", "~callbacks.progress_bar", "hydra.sweep.dir=study",
    ]
    result = run_cli("pcbseg.cli.train", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    import yaml

    best = yaml.safe_load((tmp_path / "study" / "optimization_results.yaml").read_text())
    assert best["name"] == "optuna" and 0 <= best["best_value"] <= 1
    summaries = [json.loads((tmp_path / "study" / str(i) / "summary.json").read_text()) for i in range(2)]
    assert best["best_value"] == max(s["val"]["mIoU"] for s in summaries)
    lrs = {s["lr"] for s in summaries}
    assert len(lrs) == 2 and all(3e-4 <= lr <= 1e-2 for lr in lrs)  # the sampler chose them
    assert sweep_report([str(tmp_path / "study")]) == 0


def test_ddp_inside_a_multirun_keeps_one_folder_and_one_checkpoint_set_per_run(tmp_path: Path, synth_root: Path):
    args = [
        "-m", "trainer=ddp_sim", "model=unet,fpn", "data=folder", f"data.root={synth_root}", "data.crop_size=64",
        "data.batch_size=2", "data.num_workers=0", "trainer.max_epochs=1", "~callbacks.progress_bar",
        "hydra.sweep.dir=sweep",
    ]
    result = subprocess.run([sys.executable, "-m", "pcbseg.cli.train", *args], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = tmp_path / "sweep"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for run in ("0", "1"):
        assert sorted(c.name for c in (sweep / run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
        assert json.loads((sweep / run / "status.json").read_text())["status"] == "finished"
        assert json.loads((sweep / run / "summary.json").read_text())["epochs"] == 1
    assert not (tmp_path / "logs").exists(), "a DDP rank wrote a run folder of its own"


def test_submitit_local_launcher_runs_a_trial(tmp_path: Path, synth_root: Path):
    import pytest

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    args = [
        "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "data=folder", f"data.root={synth_root}",
        "data.crop_size=64", "data.batch_size=4", "data.num_workers=0", "trainer.max_epochs=1",
        "~callbacks.progress_bar", "hydra.sweep.dir=sweep",
    ]
    result = subprocess.run([sys.executable, "-m", "pcbseg.cli.train", *args], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "sweep" / "0" / "summary.json").read_text())["epochs"] == 1


def test_slurm_launcher_config_composes():
    import pytest

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from pcbseg.config import compose

    cfg = compose("train", ["hydra/launcher=slurm", "trainer=ddp"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.tasks_per_node == 1
