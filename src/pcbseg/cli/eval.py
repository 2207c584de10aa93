"""``pcbseg-eval``: full-resolution scores, plots and a report for one or more checkpoints.

    pcbseg-eval ckpt_path=logs/train/runs/<time>/checkpoints/best.ckpt
    pcbseg-eval ckpt_path=[a/checkpoints/best.ckpt,b/checkpoints/best.ckpt]

Writes ``metrics.json``, ``report.md`` (+ PNGs) and a self-contained ``report.html`` into its run
folder (one subfolder per checkpoint when several are given, plus ``compare.md/csv/png``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import hydra
import numpy as np
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig

from pcbseg.api import CheckpointError, load_model, read_checkpoint
from pcbseg.cli import exit_with, predictor_from_config
from pcbseg.config import CONFIG_PATH
from pcbseg.data.datamodule import PCBDataModule
from pcbseg.data.dataset import SegmentationDataset
from pcbseg.data.layout import DatasetError
from pcbseg.evaluate import ImageResult, evaluate_images
from pcbseg.jsonfile import write_json
from pcbseg.report import Sample, write_comparison, write_report
from pcbseg.taxonomy import TaxonomyError

log = logging.getLogger("pcbseg.eval")


def _thumb(image: np.ndarray, target: np.ndarray, pred: np.ndarray, side: int = 320) -> tuple[np.ndarray, ...]:
    scale = min(1.0, side / max(image.shape[:2]))
    if scale == 1.0:
        return image, target, pred
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return (cv2.resize(image, size, interpolation=cv2.INTER_AREA),
            cv2.resize(target, size, interpolation=cv2.INTER_NEAREST), cv2.resize(pred, size, interpolation=cv2.INTER_NEAREST))


def _datamodule(cfg: DictConfig, ckpt: Path) -> PCBDataModule:
    if cfg.get("data"):
        return instantiate(cfg.data)
    hp = read_checkpoint(ckpt).get("datamodule_hyper_parameters")
    if not hp:
        raise DatasetError(ckpt, "holds no dataset settings; name the data, e.g. data=folder data.root=<dataset>")
    return PCBDataModule(**hp)


def _config_text(ckpt: Path, module: torch.nn.Module) -> str:
    run_cfg = ckpt.resolve().parent.parent / ".hydra" / "config.yaml"
    if run_cfg.is_file():
        return run_cfg.read_text()
    return yaml.safe_dump(dict(module.hparams), sort_keys=False)


def evaluate_checkpoint(cfg: DictConfig, ckpt: Path, out: Path) -> dict:
    module = load_model(ckpt, device=cfg.device)
    dm = _datamodule(cfg, ckpt)
    dm.prepare_data()
    dm.setup("validate")
    taxonomy = dm.taxonomy
    if list(module.hparams.class_names) != list(taxonomy.names):
        raise DatasetError(dm.layout.classes, f"classes {list(taxonomy.names)} differ from the checkpoint's "
                           f"{list(module.hparams.class_names)}")
    ids = dm.split_ids.get(cfg.split, [])
    if not ids:
        raise DatasetError(dm.layout.splits, f"no image in the {cfg.split!r} split")
    dataset = SegmentationDataset(dm.layout.root, ids)
    predictor = predictor_from_config(module, cfg)
    samples: list[Sample] = []

    def keep(image_id: str, image: np.ndarray, target: np.ndarray, pred: np.ndarray, result: ImageResult) -> None:
        samples.append(Sample(image_id, *_thumb(image, target, pred), result.miou))
        log.info("%s: mIoU %.3f", image_id, result.miou)

    evaluation = evaluate_images(lambda image: predictor.predict(image).mask, dataset, list(taxonomy.names),
                                 taxonomy.ignore_index, cfg.boundary_px, on_image=keep)
    metrics = evaluation.metrics()
    metrics.update({"checkpoint": str(ckpt.resolve()), "dataset": str(dm.layout.root.resolve()), "split": cfg.split})
    out.mkdir(parents=True, exist_ok=True)
    metrics["tiling"] = {"tile": predictor.tile, "overlap": predictor.overlap, "tta": predictor.tta,
                         "scale": predictor.scale, "px_per_mm": cfg.get("px_per_mm"), "adapt_bn": predictor.adapt_bn}
    write_json(out / "metrics.json", metrics)
    rng = np.random.default_rng(cfg.seed)
    shown = [samples[j] for j in sorted(rng.choice(len(samples), min(cfg.num_show, len(samples)), replace=False))]
    ranked = sorted((s for s in samples if np.isfinite(s.miou)), key=lambda s: s.miou)
    paths = write_report(out, metrics, taxonomy, shown, ranked[:cfg.top_losses], _config_text(ckpt, module), str(ckpt), cfg.split)
    log.info("%s on %s/%s: mIoU %.3f, pixel error rate %.4f (always the most frequent class: %.4f) -> %s", ckpt,
             dm.layout.root, cfg.split, metrics["mIoU"], metrics["pixel_error_rate"], metrics["majority_pixel_error_rate"],
             paths["html"])
    return metrics


def _label(ckpt: Path) -> str:
    """A run's folder name (checkpoints live in <run>/checkpoints/)."""
    p = ckpt.resolve()
    return p.parent.parent.name if p.parent.name == "checkpoints" else p.stem


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
def main(cfg: DictConfig) -> float | None:
    ckpts = [Path(c) for c in (cfg.ckpt_path if isinstance(cfg.ckpt_path, ListConfig) else [cfg.ckpt_path])]
    out = Path(cfg.paths.output_dir)
    entries = []
    try:
        for i, ckpt in enumerate(ckpts):
            sub = out if len(ckpts) == 1 else out / f"{i}_{_label(ckpt)}"
            entries.append((f"{i}_{_label(ckpt)}", evaluate_checkpoint(cfg, ckpt, sub)))
    except (DatasetError, FileNotFoundError, CheckpointError, TaxonomyError, ValueError) as e:
        exit_with(log, e)
    if len(entries) > 1:
        paths = write_comparison(out, entries)
        log.info("Comparison: %s", paths["md"])
    return entries[0][1]["mIoU"]


if __name__ == "__main__":
    main()
