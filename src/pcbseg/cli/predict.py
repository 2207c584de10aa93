"""``pcbseg-predict``: class masks and overlays for board photos of any size, tile by tile.

    pcbseg-predict ckpt_path=.../best.ckpt input=photos/ output=predictions/ tta=[hflip,vflip]

Unreadable files are reported and skipped; a summary ends the run. Existing outputs are never
replaced unless ``overwrite=true``. A photo with no board in it (almost no edges: a blank sheet, a
lens cap, a white-out) gets an all-background mask and a note instead of a prediction.
"""

from __future__ import annotations

import glob
import logging
import sys
import time
from pathlib import Path

import cv2
import hydra
import numpy as np
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pcbseg.api import CheckpointError, load_model
from pcbseg.cli import exit_with, predictor_from_config
from pcbseg.config import CONFIG_PATH
from pcbseg.data.layout import IMAGE_EXTENSIONS, DatasetError, read_image, write_image, write_mask
from pcbseg.inference import Prediction, TiledPredictor, no_board_note
from pcbseg.taxonomy import Taxonomy

log = logging.getLogger("pcbseg.predict")


def find_inputs(spec: str) -> list[Path]:
    """A file, every image in a folder (extensions in any case), or a glob, sorted."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if path.exists():
        return [path]
    return sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())


def overlay(image: np.ndarray, mask: np.ndarray, taxonomy: Taxonomy, alpha: float) -> np.ndarray:
    colours = taxonomy.colorize(mask).astype(np.float32)
    keep = (mask == taxonomy.id_of("background"))[..., None] if "background" in taxonomy.names else False
    blended = image.astype(np.float32) * (1 - alpha) + colours * alpha
    return np.where(keep, image, blended).astype(np.uint8)


def build_predictor(cfg: DictConfig) -> tuple[TiledPredictor, Taxonomy]:
    model = load_model(cfg.ckpt_path, device=cfg.device)
    predictor = predictor_from_config(model, cfg)
    if cfg.backend == "onnx":
        from pcbseg.export import OnnxForward

        if predictor.adapt_bn:
            raise ValueError(f"adapt_bn={predictor.adapt_bn:g} needs backend=torch: an ONNX model's BatchNorm "
                             "statistics are folded into its weights")

        predictor.model = OnnxForward(Path(cfg.onnx_path) if cfg.onnx_path else Path(cfg.ckpt_path).with_suffix(".onnx"))
    elif cfg.backend != "torch":
        raise ValueError(f"backend={cfg.backend!r} is unknown: torch or onnx")
    return predictor, model.taxonomy


def _outputs(out: Path, stem: str, taxonomy: Taxonomy, cfg: DictConfig) -> dict[str, Path]:
    paths = {"mask": out / f"{stem}_mask.png"}
    if cfg.save_overlay:
        paths["overlay"] = out / f"{stem}_overlay.jpg"
    if cfg.save_probs:
        paths.update({f"prob_{n}": out / f"{stem}_prob_{n}.png" for n in taxonomy.names})
    return paths


def _background(image: np.ndarray, taxonomy: Taxonomy, num_classes: int, with_probs: bool) -> Prediction:
    bg = taxonomy.names.index("background") if "background" in taxonomy.names else 0
    probs = None
    if with_probs:
        probs = np.zeros((num_classes, *image.shape[:2]), np.float16)
        probs[bg] = 1
    return Prediction(mask=np.full(image.shape[:2], bg, np.uint8), probs=probs)


def predict_files(cfg: DictConfig) -> tuple[list[Path], list[tuple[Path, str]]]:
    inputs = find_inputs(str(cfg.input))
    if not inputs:
        raise FileNotFoundError(f"{cfg.input}: no image files found")
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    predictor, taxonomy = build_predictor(cfg)
    done: list[Path] = []
    failed: list[tuple[Path, str]] = []
    stems: dict[str, int] = {}
    columns = (TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("images", total=len(inputs))
        for path in inputs:
            bar.advance(task)
            stem = path.stem if path.stem not in stems else f"{path.stem}_{stems[path.stem]}"
            stems[path.stem] = stems.get(path.stem, 0) + 1
            targets = _outputs(out, stem, taxonomy, cfg)
            clash = [p for p in targets.values() if p.exists()]
            if clash and not cfg.overwrite:
                failed.append((path, f"output {clash[0]} exists (overwrite=true to replace)"))
                continue
            try:
                image = read_image(path)
            except DatasetError as e:
                failed.append((path, e.reason))
                log.error("%s", e)
                continue
            start = time.perf_counter()
            note = no_board_note(image) if cfg.get("no_board_check", True) else None
            if note:
                log.warning("%s: %s", path, note)
                pred = _background(image, taxonomy, predictor.num_classes, cfg.save_probs)
            else:
                pred = predictor.predict(image, return_probs=cfg.save_probs)
            write_mask(targets["mask"], pred.mask)
            if cfg.save_overlay:
                write_image(targets["overlay"], overlay(image, pred.mask, taxonomy, cfg.overlay_alpha), jpeg_quality=90)
            if cfg.save_probs:
                for i, name in enumerate(taxonomy.names):
                    cv2.imwrite(str(targets[f"prob_{name}"]), (pred.probs[i].astype(np.float32) * 255 + 0.5).astype(np.uint8))
            log.info("%s (%dx%d): %.1f s -> %s", path, image.shape[1], image.shape[0], time.perf_counter() - start,
                     targets["mask"])
            done.append(path)
    return done, failed


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        done, failed = predict_files(cfg)
    except (FileNotFoundError, ValueError, CheckpointError, ImportError) as e:
        exit_with(log, e)
    log.info("Predicted %d image(s) into %s; skipped %d", len(done), cfg.output, len(failed))
    for path, why in failed:
        log.warning("skipped %s: %s", path, why)
    if not done:
        sys.exit(1)


if __name__ == "__main__":
    main()
