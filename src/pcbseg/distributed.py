"""DDP inside Hydra multiruns.

Lightning starts each extra DDP rank by re-running the command line with the run's folder forced
(``hydra.run.dir``). In a multirun that command line is the whole sweep (``-m model=unet,fpn``),
so every rank would launch every job again, in folders of its own. Here each extra rank re-runs
only its own job — the job's overrides, in the job's folder, without ``-m`` — so a run has one
folder and one set of checkpoints however many ranks train it (ranks other than 0 write nothing).
Between runs, :func:`isolated_ddp_run` clears what one run's DDP left in the process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_original_cwd


def job_subprocess_cmd(local_rank: int) -> tuple[Sequence[str], str]:
    """The command that starts DDP rank ``local_rank`` of the current Hydra job."""
    hc = HydraConfig.get()
    command = [sys.executable, "-m", "pcbseg.cli.train", *hc.overrides.task,
               f'hydra.run.dir="{hc.runtime.output_dir}"', f"hydra.job.name=train_ddp_process_{local_rank}",
               "hydra.output_subdir=null"]
    return command, get_original_cwd()


def use_job_command_for_ddp_ranks() -> None:
    """In a multirun, make Lightning's DDP launcher start ranks with :func:`job_subprocess_cmd`."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    from lightning.pytorch.strategies.launchers import subprocess_script

    subprocess_script._hydra_subprocess_cmd = job_subprocess_cmd  # Lightning looks it up at launch time


# Set in the launching process by Lightning's DDP launcher for its children. Left behind, they make
# the next run of a sweep believe its ranks are started externally, and it waits for them forever.
_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def isolated_ddp_run() -> Iterator[None]:
    """Leave the process as it was found: DDP environment variables restored, process group closed."""
    saved = {k: os.environ.get(k) for k in _DDP_ENV}
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
