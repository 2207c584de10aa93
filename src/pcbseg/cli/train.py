"""``pcbseg-train``: fine-tune a pretrained encoder and judge it on the fixed holdout.

    pcbseg-train                                    # synthetic boards, lite0 Unet, CPU
    pcbseg-train model=fpn augment=heavy trainer.max_epochs=20 seed=1
    pcbseg-train ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt   # resume a killed run
    pcbseg-train experiment=real_photos init_from=<sim run>/checkpoints/last.ckpt   # fine-tune a trained model

Each run writes into its own folder: the resolved config (``.hydra/``), ``checkpoints/best.ckpt``
and ``last.ckpt``, ``metrics.csv``, and ``summary.json`` with the best checkpoint's holdout scores.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from pcbseg.api import CheckpointError, build, load_model, read_checkpoint
from pcbseg.config import CONFIG_PATH
from pcbseg.data.layout import DatasetError
from pcbseg.distributed import isolated_ddp_run, use_job_command_for_ddp_ranks
from pcbseg.evaluate import evaluate_images
from pcbseg.jsonfile import jsonable, write_json
from pcbseg.models.module import ConfigError
from pcbseg.models.weights import WeightsError
from pcbseg.taxonomy import TaxonomyError

log = logging.getLogger("pcbseg.train")

# Errors with a message written for the user: no traceback needed.
KNOWN_ERRORS = (DatasetError, WeightsError, FileExistsError, FloatingPointError, CheckpointError, ConfigError,
                TaxonomyError)


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    return [instantiate(c) for c in (group or {}).values() if c is not None and "_target_" in c]


def _lr_find(trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule, out: Path,
             tune: DictConfig) -> float:
    from lightning.pytorch.tuner import Tuner

    finder = Tuner(trainer).lr_find(model, datamodule=datamodule, update_attr=False, num_training=int(tune.num_training),
                                    early_stop_threshold=tune.early_stop_threshold)
    suggestion = finder.suggestion()
    fig = finder.plot(suggest=True)
    fig.savefig(out / "lr_find.png", dpi=100)
    write_json(out / "lr_find.json", {"suggestion": suggestion, "lr": finder.results["lr"], "loss": finder.results["loss"]})
    if suggestion is None or not math.isfinite(suggestion):
        log.warning("LR finder gave no suggestion; keeping lr=%s (plot in %s)", model.hparams.lr, out / "lr_find.png")
        return model.hparams.lr
    log.info("LR finder suggests lr=%.2e (plot: %s)", suggestion, out / "lr_find.png")
    return float(suggestion)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job as configured; returns the summary (also written to summary.json)."""
    start = time.perf_counter()
    out = Path(cfg.paths.output_dir)
    if (out / "summary.json").exists():
        raise FileExistsError(f"{out}: holds a finished run (summary.json); choose another hydra.run.dir")
    if cfg.get("init_from_required") and not cfg.get("init_from") and not cfg.get("ckpt_path"):
        # a fine-tuning recipe (experiment=finetune_photos) must not quietly start from ImageNet weights;
        # resuming a killed run of it needs ckpt_path alone
        raise ConfigError(f"init_from: experiment {cfg.get('task_name')} starts from a trained model's weights; "
                          "add init_from=<an experiment=sim_to_real run>/checkpoints/last.ckpt")
    rank_zero = int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0
    if rank_zero and (out / "metrics.csv").exists():  # resuming into a killed run's folder: Lightning would delete it
        (out / "metrics.csv").rename(out / f"metrics.before-{time.strftime('%Y%m%d-%H%M%S')}.csv")
    # Lightning's CSV logger warns about the folder Hydra already made for this run; nothing is lost.
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))

    datamodule, model = build(cfg)
    if cfg.get("ckpt_path") and cfg.get("init_from"):
        raise ConfigError("ckpt_path resumes a run and init_from starts a new one from a model's weights: set one")
    if cfg.get("ckpt_path"):
        check_resume(cfg.ckpt_path, model)
    if cfg.get("init_from"):
        init_weights(cfg.init_from, model)

    callbacks = _instantiate_all(cfg.get("callbacks"))
    # MLflow 3 refuses its file store unless asked; a local folder is what logger=mlflow promises.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    loggers = _instantiate_all(cfg.get("logger"))
    use_job_command_for_ddp_ranks()
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    if cfg.tune.lr_find:
        lr = _lr_find(trainer, model, datamodule, out, cfg.tune)
        model.hparams.lr = lr
        trainer = instantiate(cfg.trainer, callbacks=_instantiate_all(cfg.get("callbacks")), logger=loggers or False)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    ckpt_cb = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.best_model_path else None
    if trainer.fast_dev_run or not trainer.is_global_zero:
        val = _lightning_scores(model.last_results.get("val", {}))
    else:
        # The holdout score of the best checkpoint, by the same path (and tiles) as pcbseg-eval.
        device = trainer.strategy.root_device
        val = holdout_scores(load_model(best, device=device) if best else model.eval(), datamodule)
    summary = {
        "best_checkpoint": str(Path(best).resolve()) if best else None,
        "val": val,
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "wall_time_s": round(time.perf_counter() - start, 2),
        "weights": model.weights_source,
        "lr": model.hparams.lr,
        "dataset": str(datamodule.layout.root.resolve()),
        "run_dir": str(out.resolve()),
        "resumed_from": cfg.get("ckpt_path"),
        "initialised_from": cfg.get("init_from"),
        "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None,
    }
    if trainer.is_global_zero:
        write_json(out / "summary.json", summary)
        _print_summary(summary)
    return jsonable(summary)


def check_resume(ckpt_path: str | Path, model: L.LightningModule) -> None:
    """Refuse, before any work, a checkpoint this run cannot continue from."""
    hp = read_checkpoint(ckpt_path)["hyper_parameters"]
    theirs, ours = list(hp.get("class_names", [])), list(model.hparams.class_names)
    if theirs != ours:
        raise CheckpointError(
            f"{ckpt_path}: trained for {len(theirs)} classes {theirs}, but this dataset has {len(ours)} {ours}. "
            "A run resumes only on the data it started with; to fine-tune these weights on new classes start a "
            f"new run with model.weights={ckpt_path} (it takes the encoder) instead of ckpt_path.")
    for key in ("arch", "encoder"):
        if hp.get(key) != model.hparams[key]:
            raise CheckpointError(f"{ckpt_path}: a model.{key}={hp.get(key)} checkpoint cannot resume a "
                                  f"model.{key}={model.hparams[key]} run; set model.{key}={hp.get(key)}")


def init_weights(ckpt_path: str | Path, model: L.LightningModule) -> None:
    """Start ``model`` from every weight of a trained pcbseg checkpoint (encoder, decoder and head).

    A new run: the schedule, optimiser, frozen phase and epochs start afresh (``ckpt_path`` resumes
    instead). The classes, in order, and the architecture must be the checkpoint's.
    """
    contents = read_checkpoint(ckpt_path)
    hp = contents["hyper_parameters"]
    theirs, ours = list(hp.get("class_names", [])), list(model.hparams.class_names)
    if theirs != ours:
        raise CheckpointError(
            f"{ckpt_path}: trained for {len(theirs)} classes {theirs}, but this dataset has {len(ours)} {ours}. "
            f"init_from needs the same classes in the same order; model.weights={ckpt_path} takes only the encoder.")
    for key in ("arch", "encoder", "arch_kwargs"):
        if (hp.get(key) or None) != (model.hparams[key] or None):
            raise CheckpointError(f"{ckpt_path}: its model.{key} is {hp.get(key)!r}, this run's "
                                  f"{model.hparams[key]!r}; set model.{key} to match it")
    state = {k.removeprefix("model."): v for k, v in contents["state_dict"].items() if k.startswith("model.")}
    try:
        model.model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt_path}: its weights do not fit this model ({str(e).splitlines()[0]})") from None
    model.head_prior_pending = False  # the head is trained: model.head_bias=prior must not replace it
    log.info("Weights initialised from %s (%d tensors); a new run: schedule and optimiser start afresh", ckpt_path,
             len(state))


def holdout_scores(model: L.LightningModule, datamodule: L.LightningDataModule) -> dict[str, Any]:
    """Full-resolution scores of ``model`` on the datamodule's val split, with the model's own tiles."""
    from pcbseg.data.dataset import SegmentationDataset

    images = SegmentationDataset(datamodule.layout.root, datamodule.split_ids["val"])
    if not len(images):
        return _lightning_scores({})
    predictor = model.predictor()
    m = evaluate_images(lambda image: predictor.predict(image).mask, images, list(model.hparams.class_names),
                        model.hparams.ignore_index).metrics()
    per_class = m["per_class"]
    return {
        "mIoU": m["mIoU"],
        "pixel_error_rate": m["pixel_error_rate"],
        "majority_pixel_error_rate": m["majority_pixel_error_rate"],
        "dice": m["mDice"],
        "per_class_iou": {k: v["iou"] for k, v in per_class.items()},
        "per_class_dice": {k: v["dice"] for k, v in per_class.items()},
        "classes_present": m["mIoU_over"],
        "confusion_matrix": m["confusion_matrix"],
        "mIoU_over": "classes present in the holdout's ground truth or predictions",
        "scored_by": f"whole images at their own size: one pass up to {predictor.max_whole_px} px, else tiles of "
                     f"{predictor.tile} px"
                     + (f" on images resized by {predictor.scale}" if predictor.scale != 1 else "") + " (as pcbseg-eval)",
    }


def _lightning_scores(val: dict[str, Any]) -> dict[str, Any]:
    return {
        "mIoU": val.get("mIoU"),
        "pixel_error_rate": val.get("pixel_error_rate"),
        "dice": val.get("dice"),
        "per_class_iou": val.get("per_class_iou", {}),
        "per_class_dice": val.get("per_class_dice", {}),
        "classes_present": val.get("classes_present", []),
        "mIoU_over": "classes present in the holdout's ground truth or predictions",
        "scored_by": "Lightning validation batches",
    }


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    val = summary["val"]
    table = Table(title=f"Holdout (val) of the best checkpoint — {summary['epochs']} epochs, {summary['wall_time_s']:.0f} s")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    table.add_column("Dice", justify="right")
    for name, iou in val["per_class_iou"].items():
        dice = val["per_class_dice"].get(name)
        table.add_row(name, _fmt(iou), _fmt(dice))
    if val["mIoU"] is not None:
        table.add_row("[bold]mean (present classes)", f"[bold]{val['mIoU']:.3f}", f"[bold]{val['dice']:.3f}")
    console = Console(width=max(100, Console().width))  # logs and CI are not terminals: keep the table readable
    console.print(table)
    if val["pixel_error_rate"] is not None:
        majority = val.get("majority_pixel_error_rate")
        versus = f" (predicting the most frequent class everywhere: {majority:.4f})" if majority is not None else ""
        console.print(f"pixel error rate: {val['pixel_error_rate']:.4f}{versus}   summary: {summary['run_dir']}/summary.json")


def _fmt(v: float | None) -> str:
    return "—" if v is None or math.isnan(v) else f"{v:.3f}"


def write_status(out: Path, status: str, **extra: Any) -> None:
    """``status.json``: running / finished / failed, so sweep reports can tell killed runs apart."""
    doc = {"status": status, "pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), **extra}
    write_json(out / "status.json", doc, indent=None)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    out = Path(cfg.paths.output_dir)
    rank_zero = int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0
    finished_before = (out / "summary.json").exists()
    if finished_before and HydraConfig.get().mode == RunMode.MULTIRUN:
        done = json.loads((out / "summary.json").read_text())
        if done.get("overrides") == list(HydraConfig.get().overrides.task):
            # Re-running a sweep: this job finished before with the same overrides; keep it.
            log.info("%s: finished before with the same overrides; skipped", out)
            return _metric(done, cfg)
    if rank_zero and not finished_before:
        write_status(out, "running")
    try:
        with isolated_ddp_run():
            summary = train(cfg)
    except Exception as e:
        # Hydra wraps errors raised while building objects; the cause is what the user needs to read.
        cause = e.__cause__ if isinstance(e, InstantiationException) and e.__cause__ is not None else e
        known = isinstance(cause, KNOWN_ERRORS)
        message = str(cause) if known else f"{type(cause).__name__}: {cause}"
        log.error("%s", message)
        if rank_zero and not finished_before:
            write_status(out, "failed", error=message)
        if known and HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(1)
        raise  # in a sweep, Hydra records the job as failed and runs the others; exiting would end the sweep
    except BaseException as e:  # interrupted
        if rank_zero and not finished_before:
            write_status(out, "failed", error=f"{type(e).__name__}: {e}")
        raise
    if rank_zero:
        write_status(out, "finished")
    return _metric(summary, cfg)


def _metric(summary: dict[str, Any], cfg: DictConfig) -> float | None:
    """The value a sweeper optimises (``optimized_metric``, e.g. ``val/mIoU``) from a run's summary."""
    metric = summary["val"].get(str(cfg.get("optimized_metric", "val/mIoU")).removeprefix("val/"))
    return float(metric) if metric is not None else None


if __name__ == "__main__":
    main()
