"""``pcbseg-export``: write a trained checkpoint as ONNX and report its parity with PyTorch.

    pcbseg-export ckpt_path=logs/train/runs/<time>/checkpoints/best.ckpt [output=model.onnx]
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pcbseg.api import CheckpointError, load_model
from pcbseg.cli import exit_with
from pcbseg.config import CONFIG_PATH
from pcbseg.export import export_onnx, parity_ok

log = logging.getLogger("pcbseg.export")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
def main(cfg: DictConfig) -> None:
    if cfg.format != "onnx":
        log.error("format=%s is not supported; only onnx", cfg.format)
        sys.exit(1)
    out = Path(cfg.output) if cfg.output else Path(cfg.ckpt_path).with_suffix(".onnx")
    if out.exists() and not cfg.overwrite:
        log.error("%s exists; pass overwrite=true to replace it", out)
        sys.exit(1)
    try:
        module = load_model(cfg.ckpt_path)
    except CheckpointError as e:
        exit_with(log, e)
    report = export_onnx(module, out, opset=cfg.opset)
    if "max_abs_diff" not in report:
        log.warning("Wrote %s; %s", out, report["parity"])
        return
    log.info("Wrote %s; parity with PyTorch on a %s test image: max |logit diff| = %.2e, argmax agreement %.4f",
             out, "x".join(map(str, report["input_shape"][2:])), report["max_abs_diff"], report["argmax_agreement"])
    if not parity_ok(report, cfg.tolerance):
        log.error("parity check failed: %.2e > tolerance %.2e. %s is kept for inspection, with its report in %s.json; "
                  "do not deploy it (try another opset=, or report the onnxruntime version)", report["max_abs_diff"],
                  cfg.tolerance, out, out)
        sys.exit(1)


if __name__ == "__main__":
    main()
