"""Draw a few synthetic boards beside their coloured masks, with a legend: docs/synthetic_boards.png.

    python scripts/make_synth_figure.py [--taxonomy fine] [--out docs/synthetic_boards.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

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
    fig, axes = plt.subplots(2, args.boards, figsize=(3.2 * args.boards, 6.9))
    for col in range(args.boards):
        image, mask = render_board(board_seed(0, col), args.size, tax)  # the first boards of data/synthetic
        axes[0, col].imshow(image)
        axes[1, col].imshow(tax.colorize(mask))
        axes[0, col].set_title(f"board_{col:05d}", fontsize=9)
        for ax in axes[:, col]:
            ax.set_axis_off()
    handles = [Patch(facecolor=[c / 255 for c in rgb], edgecolor="0.5", label=name)
               for name, rgb in zip(tax.names, tax.colors, strict=True)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    fig.suptitle(f"pcbseg synthetic boards ({args.taxonomy} taxonomy): image above, label mask below", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    args.out.parent.mkdir(exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
