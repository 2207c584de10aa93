"""``pcbseg-import gerber``: boards' fabrication files -> labelled photo-like renders in the canonical layout.

Per board folder: identify and parse the layers (:mod:`.files`), label each side at
``px_per_mm`` (:mod:`.labels`), then write one whole-side render and ``renders`` random crops per
side (:mod:`.render`). Every image of a board has the board as its group, so the holdout never
splits a board. A board that cannot be read is skipped with a message naming the file; the others
still import. ``gerber_boards.json`` records, per board, which files were found and how, how many
objects were labelled by X2 attribute and how many by rule, and the notes.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pcbseg.data.gerber.example import write_example_board
    >>> tmp = Path(tempfile.mkdtemp())
    >>> board = write_example_board(tmp / "demo")
    >>> result = import_gerber([board], tmp / "ds", renders=2, size=96, px_per_mm=10, valid_pct=0)
    >>> len(result.imported), result.rows[0].group
    (6, 'demo')
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pcbseg.data.builder import DatasetBuilder, ImportResult
from pcbseg.data.gerber.files import GerberError
from pcbseg.data.gerber.labels import label_board
from pcbseg.data.gerber.render import render_crop, render_full
from pcbseg.data.synth.scene import check_look
from pcbseg.jsonfile import write_json
from pcbseg.taxonomy import Taxonomy, get_taxonomy

BOARDS_FILE = "gerber_boards.json"


def import_gerber(boards: Sequence[str | Path], out: str | Path, px_per_mm: float = 20.0, renders: int = 8,
                  size: int = 512, render_px_per_mm: tuple[float, float] = (8.0, 20.0), taxonomy: str | Taxonomy = "default",
                  outside: str = "ignore", full: bool = True, seed: int = 0, valid_pct: float = 0.2, test_pct: float = 0.0,
                  overwrite: bool = False, look: str = "classic") -> ImportResult:
    """Build a dataset at ``out`` from board folders; see the module docstring."""
    tax = get_taxonomy(taxonomy) if isinstance(taxonomy, str) else taxonomy
    if outside not in ("ignore", "background"):
        raise ValueError(f"outside must be 'ignore' or 'background', got {outside!r}")
    check_look(look)
    out = Path(out)
    records = {}
    with DatasetBuilder(out, tax, source=", ".join(str(b) for b in boards), overwrite=overwrite) as builder:
        builder.notes += [f"Labels at {px_per_mm} px/mm; {renders} crop(s) of {size} px at {render_px_per_mm[0]}-"
                          f"{render_px_per_mm[1]} px/mm per side" + (" plus one whole-side render" if full else "")
                          + f"; outside the board outline: {outside}; look: {look}. The group of every image is its board.", ""]
        rows = ["| board | layers found (X2 / by name) | objects by attribute | by rule | vias | pads | components | "
                "seconds |", "|---|---|---|---|---|---|---|---|"]
        for index, board_dir in enumerate(boards):
            board_dir = Path(board_dir)
            name = board_dir.resolve().stem if board_dir.is_file() else board_dir.resolve().name  # board.zip -> board
            start = time.perf_counter()
            try:
                files, sides = label_board(board_dir, px_per_mm)
            except GerberError as e:
                builder.skip(e.path, e.reason)
                continue
            rng = np.random.default_rng([seed, index])
            for side in sides:
                shots = ([("full", render_full(side, tax, rng, outside=outside, look=look))] if full else [])
                shots += [(f"{k:03d}", render_crop(side, tax, rng, size, render_px_per_mm, outside, look))
                          for k in range(renders)]
                for tag, (image, mask) in shots:
                    builder.add(f"{name}_{side.side}_{tag}", image, mask, group=name, source_file=board_dir,
                                image_ext=".jpg")
            seconds = time.perf_counter() - start
            n_x2 = sum(v == "X2" for v in files.identified_by.values())
            by_attr, by_rule = sum(s.by_attribute for s in sides), sum(s.by_rule for s in sides)
            records[name] = {
                "folder": str(board_dir.resolve()),
                "labelled_by": "attributes" if by_rule == 0 else "rules" if by_attr == 0 else "mixed",
                "objects_by_attribute": by_attr, "objects_by_rule": by_rule,
                "files": {f"{s or 'board'}/{k}": p.name for (s, k), p in sorted(files.layers.items(), key=str)},
                "drills": [p.name for p in files.drills], "identified_by": files.identified_by,
                "sides": {s.side: {"vias": s.counts["via"], "pads": s.counts["pad"], "components": len(s.components),
                                   "megapixels": round(s.board.size / 1e6, 3)} for s in sides},
                "notes": [n for s in sides for n in s.notes], "seconds": round(seconds, 2),
            }
            rows.append(f"| {name} | {len(files.identified_by)} ({n_x2} / {len(files.identified_by) - n_x2}) | {by_attr} | "
                        f"{by_rule} | {sum(s.counts['via'] for s in sides)} | {sum(s.counts['pad'] for s in sides)} | "
                        f"{sum(len(s.components) for s in sides)} | {seconds:.1f} |")
        builder.sections += ["## Boards", "", *rows, "",
                             "Objects without an X2 aperture function are labelled by rule (see pcbseg.data.gerber.labels)."]
        for name, rec in records.items():
            builder.sections += [f"- {name}: " + "; ".join(rec["notes"])] if rec["notes"] else []
        write_json(builder.tmp / BOARDS_FILE, records, indent=1)
        return builder.finish(valid_pct, test_pct, seed, group_pattern=None, check_pixels=False)
