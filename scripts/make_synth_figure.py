"""Draw a few synthetic boards beside their coloured masks, with a legend: docs/synthetic_boards.png.

    python scripts/make_synth_figure.py [--taxonomy fine] [--out docs/synthetic_boards.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _figure import image_mask_grid, legend_and_save
from pcbseg.data.synth import board_seed, render_board
from pcbseg.taxonomy import get_taxonomy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--taxonomy", default="default")
    ap.add_argument("--boards", type=int, default=4)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--out", type=Path, default=Path("docs/synthetic_boards.png"))
    args = ap.parse_args()
    tax = get_taxonomy(args.taxonomy)
    fig, axes = image_mask_grid(args.boards)
    for col in range(args.boards):
        image, mask = render_board(board_seed(0, col), args.size, tax)  # the first boards of data/synthetic
        axes[0, col].imshow(image)
        axes[1, col].imshow(tax.colorize(mask))
        axes[0, col].set_title(f"board_{col:05d}", fontsize=9)
    legend_and_save(fig, tax, f"pcbseg synthetic boards ({args.taxonomy} taxonomy): image above, label mask below", args.out)


if __name__ == "__main__":
    main()
