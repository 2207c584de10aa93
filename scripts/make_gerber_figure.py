"""Renders of real board layouts beside the labels from their Gerber files: docs/gerber_renders.png.

    python scripts/make_gerber_figure.py [--boards tfrpm01 snappergps ferris nrfmicro] [--out docs/gerber_renders.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

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
    fig, axes = plt.subplots(2, len(args.boards), figsize=(3.2 * len(args.boards), 6.9))
    for col, name in enumerate(args.boards):
        _, sides = label_board(GERBERS / name, px_per_mm=20)
        image, mask = render_crop(sides[0], tax, np.random.default_rng(col), args.size, px_per_mm=(12, 16))
        axes[0, col].imshow(image)
        axes[1, col].imshow(tax.colorize(mask))
        axes[0, col].set_title(f"{name} (top)", fontsize=9)
        for ax in axes[:, col]:
            ax.set_axis_off()
    handles = [Patch(facecolor=[c / 255 for c in rgb], edgecolor="0.5", label=name)
               for name, rgb in zip([*tax.names, "ignore"], [*tax.colors, (128, 128, 128)], strict=True)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    fig.suptitle("pcbseg-import gerber: renders of real layouts (above) and labels from their files (below)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    args.out.parent.mkdir(exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
