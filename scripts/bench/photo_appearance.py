"""How copper under the mask and drilled holes look on the registered photos, and on synthetic photo-look boards.

    python scripts/bench/photo_appearance.py --photos data/bench-photos [--boards 60]

The numbers the photo look (``pcbseg.data.synth.appearance.paint``) was fitted to, measured from the
labels of the registered photos (scripts/real_photos.py writes them) and, the same way, from
``--boards`` synthetic boards drawn in each look (``classic``, ``photo``):

* pour: the mean colour of trace pixels more than 8 px inside copper, over the mean colour of bare
  board more than 3 px from anything (per channel, then the mean of the three);
* thin trace: the mean colour of trace pixels with no pour within 5 px, minus that bare board
  (the mean over channels: a lift in [0, 1] units);
* hole: the median brightness of hole pixels 2 px or more inside the hole (0 black, 1 white).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _report import write_section

from pcbseg.data.layout import read_image, read_mask
from pcbseg.taxonomy import get_taxonomy

TAX = get_taxonomy("default")


def measure(image: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Pour ratio, thin-trace lift and hole brightness of one labelled image (NaN where it shows too little)."""
    img = image.astype(np.float32) / 255
    trace = (mask == TAX.id_of("trace")).astype(np.uint8)
    bg = (mask == TAX.id_of("background")).astype(np.uint8)
    hole = (mask == TAX.id_of("hole")).astype(np.uint8)
    depth = cv2.distanceTransform(trace, cv2.DIST_L2, 3)
    near_pour = cv2.dilate((depth > 4).astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
    thin, pour = (trace > 0) & ~near_pour, depth > 8
    bare = cv2.distanceTransform(bg, cv2.DIST_L2, 3) > 3
    core = cv2.distanceTransform(hole, cv2.DIST_L2, 3) >= 2
    nan = float("nan")
    if bare.sum() < 200:
        return {"pour": nan, "thin": nan, "hole": float(np.median(img[core].mean(1))) if core.sum() >= 30 else nan}
    b = img[bare].mean(0)
    return {
        "pour": float((img[pour].mean(0) / np.maximum(b, 0.02)).mean()) if pour.sum() >= 200 else nan,
        "thin": float((img[thin].mean(0) - b).mean()) if thin.sum() >= 200 else nan,
        "hole": float(np.median(img[core].mean(1))) if core.sum() >= 30 else nan,
    }


def spread(values: list[float]) -> str:
    v = np.array([x for x in values if np.isfinite(x)])
    if not len(v):
        return "–"
    return f"{np.median(v):.2f} ({np.percentile(v, 10):.2f} to {np.percentile(v, 90):.2f}, n={len(v)})"


def main() -> None:
    from pcbseg.data.synth.writer import render_board

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, required=True, help="registered photos (images/ and masks/)")
    ap.add_argument("--boards", type=int, default=60, help="synthetic photo-look boards to measure")
    args = ap.parse_args()
    files = sorted((args.photos / "images").glob("*.png"))
    if not files:
        ap.error(f"{args.photos / 'images'}: no .png photos (make them with scripts/real_photos.py)")

    photos = {f.stem: measure(read_image(f), read_mask(args.photos / "masks" / f.name)) for f in files}
    synth = {look: [measure(*render_board(seed, size=320, look=look)) for seed in range(args.boards)]
             for look in ("classic", "photo")}

    def cell(v: float, fmt: str = ".2f") -> str:
        return "–" if not np.isfinite(v) else format(v, fmt)

    lines = ["| photo | pour / bare | thin trace − bare | hole brightness |", "|---|---|---|---|"]
    lines += [f"| {name} | {cell(m['pour'])} | {cell(m['thin'], '+.2f')} | {cell(m['hole'])} |" for name, m in photos.items()]
    summary = ["| images | pour / bare | thin trace − bare | hole brightness |", "|---|---|---|---|"]
    for name, ms in ((f"{len(photos)} registered photos", list(photos.values())),
                     *((f"{args.boards} synthetic boards, look={look}", synth[look]) for look in synth)):
        summary.append(f"| {name} | " + " | ".join(spread([m[k] for m in ms]) for k in ("pour", "thin", "hole")) + " |")
    body = ("Medians, with the 10th to 90th percentile over images, and how many images show enough of each "
            "(at least 200 pixels; 30 for holes). Pour / bare is a brightness ratio (1: the mask's own colour), "
            "thin trace − bare a lift in [0, 1] units, hole brightness 0 for black and 1 for white.\n\n"
            + "\n".join(summary) + "\n\nPer photo:\n\n" + "\n".join(lines))
    write_section("photo-appearance", "Copper under the mask and holes: registered photos against the photo look", body)


if __name__ == "__main__":
    main()
