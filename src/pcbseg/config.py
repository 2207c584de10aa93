"""Hydra plumbing shared by every entry point: where the configs live and our resolvers.

Example:
    >>> from pcbseg.config import compose
    >>> cfg = compose("synth", ["num_boards=3"])
    >>> cfg.num_boards, cfg.out.endswith("data/synthetic")
    (3, True)
"""

from __future__ import annotations

import os

from hydra import compose as _compose
from hydra import initialize_config_module
from omegaconf import DictConfig, OmegaConf

from pcbseg.hardware import cpu_precision

CONFIG_MODULE = "pcbseg.conf"
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"  # for @hydra.main: works from any directory once installed


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("pcbseg.cwd"):
        OmegaConf.register_new_resolver("pcbseg.cwd", os.getcwd)
    if not OmegaConf.has_resolver("pcbseg.cpu_precision"):
        # trainer.precision on CPU: bf16-mixed where the CPU has native bfloat16, else 32-true
        OmegaConf.register_new_resolver("pcbseg.cpu_precision", cpu_precision)


def compose(config_name: str, overrides: list[str] | None = None, return_hydra_config: bool = False) -> DictConfig:
    """Compose a shipped config outside a Hydra app (tests, notebooks)."""
    register_resolvers()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return _compose(config_name, overrides or [], return_hydra_config=return_hydra_config)


register_resolvers()
