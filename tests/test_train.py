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

from cli_runner import run_cli
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


def _cli(tmp_path: Path, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``pcbseg-train <overrides>`` as typed, run in this process (see cli_runner)."""
    return run_cli("pcbseg.cli.train", *overrides, cwd=tmp_path, env=env)


def _process(tmp_path: Path, *overrides: str, timeout: int = 400, env: dict | None = None) -> subprocess.CompletedProcess:
    """``pcbseg-train`` in a process of its own: for what needs one (a SIGKILL, DDP ranks that re-run the command)."""
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "pcbseg.cli.train", *overrides]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=env)


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


def test_a_time_budget_alone_sets_the_length_of_a_run(tmp_path: Path, synth_root: Path):
    summary, out = _run_in_process(tmp_path, synth_root, "trainer.max_epochs=-1", "+trainer.max_time=00:00:00:20",
                                   "model.freeze_pct=0.2", "~callbacks.early_stopping")
    assert summary["epochs"] >= 1 and (out / "checkpoints" / "best.ckpt").is_file()
    assert 15 < summary["wall_time_s"] < 120


def test_frequency_class_weights_favour_rare_classes_and_travel_with_the_checkpoint(tmp_path: Path, synth_root: Path):
    from pcbseg.models.module import frequency_weights

    _, out = _run_in_process(tmp_path, synth_root, "model.class_weights=frequency", "trainer.max_epochs=1")
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    weights = dict(zip(ckpt["hyper_parameters"]["class_names"], ckpt["pcbseg_class_weights"], strict=True))
    assert weights["via"] > 1 > weights["background"]  # vias are a sliver of a board, background most of it
    assert frequency_weights([900, 90, 10]) == pytest.approx([0.1, 1.0, 9.0])
    assert frequency_weights([5, 0, 5]) == [1.0, 1.0, 1.0]  # an absent class is left alone


def test_a_prior_head_bias_starts_the_model_at_the_train_splits_class_mix(tmp_path: Path, synth_root: Path):
    import numpy as np

    from pcbseg.data.layout import read_mask
    from pcbseg.data.splits import read_splits
    from pcbseg.models.module import prior_bias

    # At a learning rate of 1e-12 the bias ends where the prior put it.
    _, out = _run_in_process(tmp_path, synth_root, "model.head_bias=prior", "model.lr=1e-12", "trainer.max_epochs=1")
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    bias = state["model.segmentation_head.0.bias"].double()
    counts = np.zeros(7)
    for row in read_splits(synth_root / "splits.csv"):
        if row.split == "train":
            counts += np.bincount(read_mask(synth_root / "masks" / f"{row.id}.png").ravel(), minlength=256)[:7]
    share = np.maximum(counts / counts.sum(), 1e-4)
    assert torch.softmax(bias, 0).numpy() == pytest.approx(share / share.sum(), rel=1e-4)
    assert int(bias.argmax()) == int(counts.argmax()) == 0  # background, the bulk of a board
    assert torch.softmax(torch.tensor(prior_bias([600, 300, 100])), 0).tolist() == pytest.approx([0.6, 0.3, 0.1])


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
    assert time.perf_counter() - start < 30  # composing the config dominates; the check itself is sub-second


def test_finished_run_folder_is_never_overwritten(tmp_path: Path, synth_root: Path):
    first = _cli(tmp_path, *_tiny(synth_root), "trainer.max_epochs=1", "hydra.run.dir=done")
    assert first.returncode == 0, first.stderr[-2000:]
    before = (tmp_path / "done" / "summary.json").read_bytes()
    again = _cli(tmp_path, *_tiny(synth_root), "trainer.max_epochs=1", "hydra.run.dir=done")
    assert again.returncode == 1 and "finished run" in again.stdout + again.stderr
    assert (tmp_path / "done" / "summary.json").read_bytes() == before


KILLER = """
import os, signal
from lightning.pytorch.callbacks import Callback


class KillAt(Callback):
    \"\"\"SIGKILL this process at a given batch of a given epoch: a crash nothing can clean up after.\"\"\"

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_run_killed_mid_epoch_and_resumed_ends_exactly_like_an_uninterrupted_one(tmp_path: Path, synth_root: Path):
    (tmp_path / "killer.py").write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    # Loader workers > 0 and heavy augmentation: order and crops must not depend on process history.
    args = [*_tiny(synth_root), "trainer.max_epochs=3", "data.batch_size=2", "data.num_workers=2", "augment=heavy"]
    whole = _process(tmp_path, *args, "hydra.run.dir=whole", env=env)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = _process(tmp_path, *args, "hydra.run.dir=killed", "+callbacks.kill._target_=killer.KillAt",
                  "+callbacks.kill.epoch=1", "+callbacks.kill.batch=2", env=env)
    assert killed.returncode == -signal.SIGKILL
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0  # saved after the first epoch
    assert not (tmp_path / "killed" / "summary.json").exists()
    resumed = _process(tmp_path, *args, "hydra.run.dir=killed", f"ckpt_path={last}", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((tmp_path / "whole" / "summary.json").read_text())
    b = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert b["epochs"] == a["epochs"] == 3 and b["resumed_from"] == str(last)
    assert b["val"] == a["val"]
    wa = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    wb = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "resumed weights differ from the uninterrupted run's"


def test_resume_from_a_checkpoint_with_other_classes_is_refused_before_training(tmp_path: Path, synth_root: Path,
                                                                                 checkpoint: Path, dataset: Path):
    tax = dataset / "classes.yaml"
    tax.write_text(tax.read_text().replace("silkscreen", "legend"))
    result = _cli(tmp_path, *_tiny(dataset), f"ckpt_path={checkpoint}", "hydra.run.dir=other")
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "legend" in out and "model.weights=" in out
    assert "Traceback" not in out


def test_init_from_starts_a_new_run_from_every_weight_of_a_trained_model(tmp_path: Path, synth_root: Path,
                                                                        checkpoint: Path):
    # At a learning rate of 1e-12 the run cannot move a weight: its decoder and head end as the checkpoint's
    # (a fresh decoder with the same seed ends as the untrained one, ~1e-2 away after the checkpoint's epoch).
    # With model.head_bias=prior too: the prior is for untrained heads and must not replace this one.
    summary, out = _run_in_process(tmp_path, synth_root, f"init_from={checkpoint}", "model.lr=1e-12",
                                   "trainer.max_epochs=1", "model.head_bias=prior")
    assert summary["initialised_from"] == str(checkpoint) and summary["resumed_from"] is None
    assert summary["epochs"] == 1  # a new run: it does not continue the checkpoint's epochs
    start = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    end = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    learnt = [k for k, v in start.items() if k.startswith(("model.decoder", "model.segmentation_head"))
              and v.is_floating_point() and "running_" not in k]
    assert len(learnt) > 10
    assert all(torch.allclose(start[k], end[k], atol=1e-6) for k in learnt)


def test_init_from_a_model_of_other_classes_is_refused_before_training(tmp_path: Path, checkpoint: Path,
                                                                        dataset: Path):
    tax = dataset / "classes.yaml"
    tax.write_text(tax.read_text().replace("silkscreen", "legend"))
    result = _cli(tmp_path, *_tiny(dataset), f"init_from={checkpoint}", "hydra.run.dir=other")
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "legend" in out and "init_from needs the same classes" in out
    assert "Traceback" not in out and not (tmp_path / "other" / "checkpoints").exists()


def test_holdout_score_in_summary_equals_pcbseg_eval(tmp_path: Path, trained_run: Path):
    summary = json.loads((trained_run / "summary.json").read_text())
    result = run_cli("pcbseg.cli.eval", f"ckpt_path={summary['best_checkpoint']}", "hydra.run.dir=ev", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert abs(metrics["mIoU"] - summary["val"]["mIoU"]) <= 1e-6
    assert abs(metrics["pixel_error_rate"] - summary["val"]["pixel_error_rate"]) <= 1e-6
    for name, v in summary["val"]["per_class_iou"].items():
        theirs = metrics["per_class"][name]["iou"]
        assert (v is None and theirs is None) or abs(v - theirs) <= 1e-6
    assert 0 < summary["val"]["majority_pixel_error_rate"] < 1


def test_summary_and_status_are_strict_json(trained_run: Path):
    def refuse(constant: str) -> None:
        pytest.fail(f"{constant} is not JSON")

    for name in ("summary.json", "status.json"):
        json.loads((trained_run / name).read_text(), parse_constant=refuse)
    assert json.loads((trained_run / "status.json").read_text())["status"] == "finished"
    assert not list(trained_run.glob(".status.json*"))  # no temp file left behind


def test_ddp_with_two_cpu_processes(tmp_path: Path, synth_root: Path):
    result = _process(tmp_path, *_tiny(synth_root), "trainer=ddp_sim", "trainer.max_epochs=1", "hydra.run.dir=ddp")
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
    suggestion = json.loads((out / "lr_find.json").read_text())["suggestion"]
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert summary["lr"] == suggestion == ckpt["hyper_parameters"]["lr"] != 3.0e-3
    head_lr = ckpt["optimizer_states"][0]["param_groups"][0]["initial_lr"]
    assert head_lr == pytest.approx(suggestion)  # the optimiser itself ran at the suggestion


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
def test_every_experiment_runs_one_batch(tmp_path: Path, synth_root: Path, experiment: str, request):
    # Sweep experiments run their first combination here: a plain run ignores hydra.sweeper.params.
    root, extra = synth_root, []
    if experiment == "finetune_photos":  # fine-tunes a trained model: the session's tiny run stands in for it
        extra = [f"init_from={request.getfixturevalue('checkpoint')}"]
    if experiment in ("sim_plus_real", "finetune_photos"):  # source weights name the merged sets' folders
        from pcbseg.data.merge import merge_datasets
        from pcbseg.data.synth import write_dataset

        parts = [write_dataset(tmp_path / name, num_boards=4, size=64, seed=k, workers=1, valid_pct=0.25)
                 for k, name in enumerate(("sim", "photos"))]
        root = merge_datasets(parts, tmp_path / "both").root
    summary, _ = _run_in_process(tmp_path, root, f"experiment={experiment}", "debug=fdr", "data.synth=null", *extra)
    assert summary["global_steps"] == 1
    assert summary["initialised_from"] == (extra[0].split("=", 1)[1] if extra else None)


@pytest.mark.parametrize("case", ["negative_lr", "bad_schedule", "malformed_classes", "missing_ckpt", "missing_init",
                                  "resume_needs_no_init"])
def test_bad_settings_end_in_one_paragraph_without_a_traceback(tmp_path: Path, dataset: Path, case: str):
    overrides = {
        "negative_lr": (["model.lr=-1"], "model.lr=-1"),
        "bad_schedule": (["model.schedule=linear"], "model.schedule='linear'"),
        "malformed_classes": ([], "classes.yaml: not valid YAML at line"),
        "missing_ckpt": ([f"ckpt_path={tmp_path / 'gone.ckpt'}"], "checkpoint not found"),
        # the fine-tuning recipe without the model it fine-tunes would quietly start from ImageNet weights
        "missing_init": (["experiment=finetune_photos"], "init_from: experiment finetune_photos starts from a trained"),
        # resuming a killed fine-tuning run takes ckpt_path alone (init_from beside it is refused): the checkpoint is checked
        "resume_needs_no_init": (["experiment=finetune_photos", f"ckpt_path={tmp_path / 'gone.ckpt'}"], "checkpoint not found"),
    }[case]
    if case == "malformed_classes":
        (dataset / "classes.yaml").write_text("classes: [name: x\n")
    result = _cli(tmp_path, *_tiny(dataset), *overrides[0], "hydra.run.dir=bad")
    out = result.stdout + result.stderr
    assert result.returncode == 1 and overrides[1] in out, out[-2000:]
    assert "Traceback" not in out, out[-3000:]
    assert json.loads((tmp_path / "bad" / "status.json").read_text())["status"] == "failed"


def test_an_empty_validation_split_is_refused_before_training(tmp_path: Path, dataset: Path):
    splits = dataset / "splits.csv"
    splits.write_text(splits.read_text().replace(",val,", ",train,"))
    result = _cli(tmp_path, *_tiny(dataset), "hydra.run.dir=noval")
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "no image is in the val split" in out and "Traceback" not in out
