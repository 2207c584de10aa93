"""Renders of real board layouts beside the labels from their Gerber files: docs/gerber_renders.png.

    python scripts/make_gerber_figure.py [--boards tfrpm01 snappergps ferris wulpus_hv] [--out docs/gerber_renders.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _figure import image_mask_grid, legend_and_save
from pcbseg.data.gerber.labels import label_board
from pcbseg.data.gerber.render import render_crop
from pcbseg.taxonomy import get_taxonomy

GERBERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "gerbers"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--boards", nargs="+", default=["tfrpm01", "snappergps", "ferris", "wulpus_hv"])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--out", type=Path, default=Path("docs/gerber_renders.png"))
    args = ap.parse_args()
    tax = get_taxonomy("default")
    fig, axes = image_mask_grid(len(args.boards))
    for col, name in enumerate(args.boards):
        _, sides = label_board(GERBERS / name, px_per_mm=20)
        image, mask = render_crop(sides[0], tax, np.random.default_rng(col), args.size, px_per_mm=(12, 16))
        axes[0, col].imshow(image)
        axes[1, col].imshow(tax.colorize(mask))
        axes[0, col].set_title(f"{name} (top)", fontsize=9)
    legend_and_save(fig, tax, "pcbseg-import gerber: renders of real layouts (above) and labels from their files (below)",
                    args.out, ignore=True)


if __name__ == "__main__":
    main()
