"""``pcbseg-synth``: render procedural boards into a dataset folder.

    pcbseg-synth out=data/boards num_boards=500 size=512 seed=1 taxonomy=fine
"""

from __future__ import annotations

import logging
import sys
import time

import hydra
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pcbseg.config import CONFIG_PATH
from pcbseg.data.splits import SPLIT_NAMES, read_splits
from pcbseg.data.synth import write_dataset

log = logging.getLogger("pcbseg.synth")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="synth")
def main(cfg: DictConfig) -> None:
    start = time.perf_counter()
    columns = (TextColumn("rendering boards"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("boards", total=cfg.num_boards)
            out = write_dataset(
                cfg.out, num_boards=cfg.num_boards, size=cfg.size, seed=cfg.seed, taxonomy=cfg.taxonomy,
                valid_pct=cfg.valid_pct, test_pct=cfg.test_pct, workers=cfg.workers,
                image_format=cfg.image_format, overwrite=cfg.overwrite, look=cfg.get("look", "classic"),
                on_board=lambda _: bar.advance(task),
            )
    except (FileExistsError, ValueError) as e:
        log.error("%s", e)
        sys.exit(1)
    took = time.perf_counter() - start
    rows = read_splits(out / "splits.csv")
    counts = ", ".join(f"{s}={sum(r.split == s for r in rows)}" for s in SPLIT_NAMES)
    log.info("Wrote %d boards (%dx%d, taxonomy %s) to %s in %.1f s (%.1f boards/s); splits: %s",
             cfg.num_boards, cfg.size, cfg.size, cfg.taxonomy, out, took, cfg.num_boards / took, counts)


if __name__ == "__main__":
    main()
