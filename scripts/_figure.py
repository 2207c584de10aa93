"""Shared by the figure scripts: a two-row grid of images over masks, a class legend, saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from pcbseg.taxonomy import Taxonomy


def image_mask_grid(columns: int):
    fig, axes = plt.subplots(2, columns, figsize=(3.2 * columns, 6.9))
    for ax in axes.ravel():
        ax.set_axis_off()
    return fig, axes


def legend_and_save(fig, taxonomy: Taxonomy, title: str, out: Path, ignore: bool = False) -> None:
    names, colours = [*taxonomy.names], [*taxonomy.colors]
    if ignore:
        names, colours = [*names, "ignore"], [*colours, (128, 128, 128)]
    handles = [Patch(facecolor=[c / 255 for c in rgb], edgecolor="0.5", label=name)
               for name, rgb in zip(names, colours, strict=True)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
