"""``pcbseg-import``: bring labelled board photos into the canonical dataset layout.

    pcbseg-import masks IMAGES_DIR MASKS_DIR --out data/mine --classes background,trace,pad
    pcbseg-import masks ../shared/data/pcb-resistor/image ../shared/data/pcb-resistor/GT \\
        --out data/pcb-resistor --mode binary --foreground dark --classes background,resistor

A plain command-line tool (it converts data; it runs no experiment). It never writes into an
existing non-empty ``--out`` without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from pcbseg.data.import_masks import import_masks


def _colour_map(path: Path | None) -> dict | None:
    """YAML ``{class_id: [r, g, b]}`` -> ``{(r, g, b): class_id}``."""
    if path is None:
        return None
    doc = yaml.safe_load(path.read_text())
    return {tuple(int(c) for c in rgb): int(cid) for cid, rgb in doc.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pcbseg-import", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="format", required=True)
    m = sub.add_parser("masks", help="an images folder and a masks folder matched by file stem")
    m.add_argument("images", type=Path)
    m.add_argument("masks", type=Path)
    m.add_argument("--out", type=Path, required=True, help="new dataset root")
    m.add_argument("--classes", required=True, help="class names in id order, comma-separated (e.g. background,resistor)")
    m.add_argument("--mode", choices=["index", "colour", "binary"], default="index",
                   help="index: class-id PNGs; colour: colour masks (--colour-map); binary: thresholded")
    m.add_argument("--threshold", type=int, default=127, help="binary masks: grey level between the two sides")
    m.add_argument("--foreground", choices=["light", "dark"], default="light", help="binary masks: which side is class 1")
    m.add_argument("--colour-map", type=Path, default=None, help="YAML {class_id: [r, g, b]} for --mode colour")
    m.add_argument("--group-pattern", default=None, help="regex whose first group is an image's group (source board)")
    m.add_argument("--valid-pct", type=float, default=0.2)
    m.add_argument("--test-pct", type=float, default=0.0)
    m.add_argument("--seed", type=int, default=42)
    m.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    try:
        result = import_masks(args.images, args.masks, args.out, [c.strip() for c in args.classes.split(",")],
                              mode=args.mode, threshold=args.threshold, foreground=args.foreground,
                              colour_map=_colour_map(args.colour_map), group_pattern=args.group_pattern,
                              valid_pct=args.valid_pct, test_pct=args.test_pct, seed=args.seed, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Imported {len(result.imported)} images into {result.root} ({len(result.skipped)} skipped); "
          f"see {result.root / 'import_report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
