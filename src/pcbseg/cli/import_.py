"""``pcbseg-import``: bring labelled board photos into the canonical dataset layout, and check for leaks.

    pcbseg-import masks IMAGES_DIR MASKS_DIR --out data/mine --classes background,trace,pad
    pcbseg-import masks ../shared/data/pcb-resistor/image ../shared/data/pcb-resistor/GT \\
        --out data/pcb-resistor --mode binary --foreground dark --classes background,resistor
    pcbseg-import coco export/train export/valid --out data/mine --classes default --map R=component
    pcbseg-import yolo export/ --out data/mine
    pcbseg-import cvat annotations.xml --images photos/ --out data/mine
    pcbseg-import gerber ../shared/data/gerbers/* --out data/gerber-boards --renders 8
    pcbseg-import photos ../shared/data/board-photos/* --out data/board-photos
    pcbseg-import merge data/synthetic data/gerber-boards --out data/combined
    pcbseg-import check data/mine

A plain command-line tool (it converts data; it runs no experiment). It never writes into an
existing non-empty ``--out`` without ``--overwrite``. ``check`` exits with 1 when it finds a leak.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from pcbseg.cli import debugging
from pcbseg.data.annotations import UNMAPPED_CHOICES
from pcbseg.data.builder import DEFAULT_GROUP_PATTERN
from pcbseg.data.layout import DatasetError, DatasetLayout


def _read_yaml_mapping(path: Path, flag: str, example: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {path}: file not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{flag} {path}: not valid YAML ({str(e).splitlines()[0]}); expected e.g. {example}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{flag} {path}: expected a mapping such as {example}, got a {type(doc).__name__}")
    return doc


def _colour_map(path: Path | None) -> dict | None:
    """YAML ``{class_id: [r, g, b]}`` -> ``{(r, g, b): class_id}``."""
    if path is None:
        return None
    example = "{0: [0, 0, 0], 1: [255, 0, 0]}"
    out: dict[tuple[int, ...], int] = {}
    for cid, rgb in _read_yaml_mapping(path, "--colour-map", example).items():
        ok_id = isinstance(cid, int) and not isinstance(cid, bool) and 0 <= cid <= 255
        ok_rgb = isinstance(rgb, (list, tuple)) and len(rgb) == 3 and all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in rgb)
        if not (ok_id and ok_rgb):
            raise ValueError(f"--colour-map {path}: entry {cid!r}: {rgb!r} must be CLASS_ID: [r, g, b] with whole "
                             f"numbers in 0..255, e.g. {example}")
        if tuple(rgb) in out:
            raise ValueError(f"--colour-map {path}: colour {list(rgb)} is given to class {out[tuple(rgb)]} and to {cid}")
        out[tuple(rgb)] = cid
    return out


def _mapping(pairs: list[str], path: Path | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if path:
        for name, cls in _read_yaml_mapping(path, "--map-file", "{resistor: component, 'R*': component}").items():
            if not isinstance(cls, (str, int)) or isinstance(cls, bool):
                raise ValueError(f"--map-file {path}: {name!r} maps to {cls!r}; expected a class name")
            out[str(name)] = str(cls)
    for pair in pairs:
        name, sep, cls = pair.rpartition("=")
        if not sep or not name:
            raise ValueError(f"--map {pair!r}: expected NAME=CLASS")
        out[name] = cls
    return out


def _boundary(value: str) -> str | int:
    if value == "auto":
        return value
    try:
        px = int(value)
    except ValueError:
        raise ValueError(f"--boundary-ignore {value!r}: expected auto or a whole number of pixels") from None
    if px < 0:
        raise ValueError(f"--boundary-ignore {value!r}: must be 0 or more")
    return px


def _ignore_regions(items: list[str]) -> dict[str, list[tuple[float, float, float, float]]]:
    """``BOARD[/PHOTO]=x0,y0,x1,y1`` (Gerber mm) -> {key: [box, ...]}."""
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for item in items:
        key, sep, box = item.partition("=")
        try:
            x0, y0, x1, y1 = (float(v) for v in box.split(","))
        except ValueError:
            raise ValueError(f"--ignore-region {item!r}: expected BOARD[/PHOTO]=X0,Y0,X1,Y1 (Gerber mm)") from None
        if not sep or not key:
            raise ValueError(f"--ignore-region {item!r}: expected BOARD[/PHOTO]=X0,Y0,X1,Y1 (Gerber mm)")
        out.setdefault(key, []).append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return out


def _common(p: argparse.ArgumentParser, classes_required: bool = False) -> None:
    p.add_argument("--out", type=Path, required=True, help="new dataset root")
    p.add_argument("--classes", required=classes_required, default=None,
                   help="class names in id order, comma-separated, or a built-in taxonomy (default, fine)"
                   + ("" if classes_required else "; default: background + the export's categories"))
    p.add_argument("--group-pattern", default=DEFAULT_GROUP_PATTERN,
                   help="regex whose first group is an image's group (source photo); default strips augmentation "
                        "suffixes (_rot90, _flip, _bright, Roboflow's _jpg.rf.<hash>); '' = every image its own group")
    p.add_argument("--group-duplicates", action="store_true",
                   help="also put near-duplicate pictures (re-shot, re-cropped) in one group; compares every pair")
    p.add_argument("--valid-pct", type=float, default=0.2)
    p.add_argument("--test-pct", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")


def _shapes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--map", action="append", default=[], metavar="NAME=CLASS",
                   help="category NAME becomes CLASS (or ignore / skip); repeatable")
    p.add_argument("--map-file", type=Path, default=None, help="YAML {category: class} (same as --map)")
    p.add_argument("--unmapped", choices=UNMAPPED_CHOICES, default="error",
                   help="categories with no class: refuse (error), paint as ignore, or drop (skip)")
    p.add_argument("--strict", action="store_true",
                   help="fail (and write nothing) if any shape would be dropped; by default each is named and counted")
    p.add_argument("--boxes-as-masks", action="store_true",
                   help="paint boxes that have no outline as filled rectangles (a detection export as coarse masks)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--keep-split", dest="keep_split", action="store_const", const=True, default=None,
                       help="keep the export's own split (an error if it has none); the default when it has one")
    split.add_argument("--redraw-split", dest="keep_split", action="store_const", const=False,
                       help="ignore the export's split and draw one by group")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pcbseg-import", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="format", required=True)

    m = sub.add_parser("masks", help="an images folder and a masks folder matched by file stem")
    m.add_argument("images", type=Path)
    m.add_argument("masks", type=Path)
    _common(m, classes_required=True)
    m.add_argument("--mode", choices=["index", "colour", "binary"], default="index",
                   help="index: class-id PNGs; colour: colour masks (--colour-map); binary: thresholded")
    m.add_argument("--threshold", type=int, default=127, help="binary masks: grey level between the two sides")
    m.add_argument("--foreground", choices=["light", "dark"], default="light", help="binary masks: which side is class 1")
    m.add_argument("--colour-map", type=Path, default=None, help="YAML {class_id: [r, g, b]} for --mode colour")

    c = sub.add_parser("coco", help="COCO instance (polygons, RLE) or panoptic JSON")
    c.add_argument("sources", type=Path, nargs="+",
                   help="JSON files, or folders with one JSON each (train/, valid/ keep their split)")
    c.add_argument("--images", type=Path, default=None, help="image folder (default: beside the JSON, or images/)")
    c.add_argument("--panoptic-masks", type=Path, default=None,
                   help="panoptic PNG folder (default: the JSON's name without .json)")
    c.add_argument("--no-pixel-check", action="store_true", help="skip the near-duplicate check of a kept split")
    _common(c)
    _shapes(c)

    y = sub.add_parser("yolo", help="YOLO segmentation export (data.yaml + images + labels/*.txt)")
    y.add_argument("root", type=Path, help="the export's folder (with data.yaml)")
    y.add_argument("--no-pixel-check", action="store_true", help="skip the near-duplicate check of the kept split")
    _common(y)
    _shapes(y)

    v = sub.add_parser("cvat", help="CVAT for images 1.1 XML (polygons and masks)")
    v.add_argument("xml", type=Path)
    v.add_argument("--images", type=Path, default=None, help="image folder (default: beside the XML, or images/)")
    _common(v)
    _shapes(v)

    g = sub.add_parser("gerber", help="boards' Gerber + Excellon files -> labelled photo-like renders")
    g.add_argument("boards", type=Path, nargs="+", help="one folder per board")
    g.add_argument("--out", type=Path, required=True, help="new dataset root")
    g.add_argument("--px-per-mm", type=float, default=20.0, help="resolution of the labels (default 20 px/mm = 50 um)")
    g.add_argument("--renders", type=int, default=8, help="random crops per side (plus one whole-side render)")
    g.add_argument("--size", type=int, default=512, help="side of a crop in pixels")
    g.add_argument("--render-px-per-mm", type=float, nargs=2, default=(8.0, 20.0), metavar=("MIN", "MAX"),
                   help="scale range of the crops")
    g.add_argument("--no-full", action="store_true", help="no whole-side render")
    g.add_argument("--taxonomy", choices=["default", "fine"], default="default")
    g.add_argument("--outside", choices=["ignore", "background"], default="ignore",
                   help="label of pixels outside the board outline")
    g.add_argument("--look", choices=["classic", "photo"], default="classic",
                   help="photo: also stray ink, backdrops, oblique views, lens distortion, glare, exposure, white balance")
    g.add_argument("--valid-pct", type=float, default=0.2, help="share of boards held out")
    g.add_argument("--test-pct", type=float, default=0.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")

    ph = sub.add_parser("photos", help="real photos of boards, labelled from their own Gerber files by registration")
    ph.add_argument("boards", type=Path, nargs="+", help="board folders: gerber/ + photos/ (+ board.json)")
    ph.add_argument("--out", type=Path, required=True, help="new dataset root")
    ph.add_argument("--taxonomy", choices=["default", "fine"], default="default")
    ph.add_argument("--outside", choices=["ignore", "background"], default="ignore",
                    help="label of pixels outside the board outline")
    ph.add_argument("--boundary-ignore", default="auto", metavar="auto|PX",
                    help="ignore band on class boundaries: as wide as the photo's residual (auto) or PX pixels")
    ph.add_argument("--max-side", type=int, default=None, help="downscale written images to this long side")
    ph.add_argument("--px-per-mm", type=float, default=None,
                    help="downscale written images to this many pixels per board millimetre (photos finer than it)")
    ph.add_argument("--no-crop", action="store_true", help="keep the whole frame (default: the board plus a margin)")
    ph.add_argument("--max-residual", type=float, default=0.3, help="mm; a photo above it is skipped (default 0.3)")
    ph.add_argument("--points", type=Path, default=None,
                    help="CSV photo,x_px,y_px,x_mm,y_mm (Gerber mm), at least 4 rows per photo: start of the search")
    ph.add_argument("--points-fixed", action="store_true", help="use --points as the fit itself, only verify it")
    ph.add_argument("--ignore-region", action="append", default=[], metavar="BOARD[/PHOTO]=X0,Y0,X1,Y1",
                    help="Gerber mm box to label ignore (e.g. a region that differs from the files); repeatable")
    ph.add_argument("--no-occlusion", action="store_true",
                    help="do not set to ignore what the photo shows and the files do not (parts, ink, glare)")
    ph.add_argument("--no-correction", action="store_true", help="homography only, never a smooth correction")
    ph.add_argument("--valid-pct", type=float, default=0.2, help="share of boards held out")
    ph.add_argument("--test-pct", type=float, default=0.0)
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")

    mg = sub.add_parser("merge", help="several datasets into one, each image keeping its split and group")
    mg.add_argument("roots", type=Path, nargs="+", help="dataset roots with the same classes")
    mg.add_argument("--out", type=Path, required=True, help="new dataset root")
    mg.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")

    k = sub.add_parser("check", help="find near-duplicate images across the splits of a dataset")
    k.add_argument("root", type=Path, help="dataset root (with splits.csv)")
    k.add_argument("--min-inliers", type=int, default=None, help="keypoints that must agree (default 4)")
    k.add_argument("--min-correlation", type=float, default=None, help="pixel correlation of the overlap (default 0.9)")
    k.add_argument("--report", type=Path, default=None, help="also write the findings as markdown here")
    return ap


def _check(args: argparse.Namespace) -> int:
    from pcbseg.data.leakage import MIN_CORRELATION, MIN_INLIERS, check_dataset_leaks, leak_table
    from pcbseg.data.splits import leaking_groups, read_splits

    layout = DatasetLayout(args.root)
    if not layout.splits.is_file():
        raise FileNotFoundError(f"{layout.splits}: no split file; is {args.root} a dataset root?")
    rows = read_splits(layout.splits)
    groups = leaking_groups(rows)
    leaks = check_dataset_leaks(args.root, rows, args.min_inliers or MIN_INLIERS, args.min_correlation or MIN_CORRELATION)
    lines = [f"# Leakage check of {args.root}", "", f"{len(rows)} images; {len(groups)} group(s) on more than one side; "
             f"{len(leaks)} near-duplicate pair(s) across splits.", ""]
    if groups:
        lines += ["| group | splits |", "|---|---|"]
        lines += [f"| {g} | {', '.join(sorted(s))} |" for g, s in sorted(groups.items())] + [""]
    if leaks:
        lines += leak_table(leaks, limit=len(leaks))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        args.report.write_text(text)
    return 1 if groups or leaks else 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    group_pattern = getattr(args, "group_pattern", None) or None
    common = {}
    if args.format not in ("check", "gerber", "merge", "photos"):
        common = dict(group_pattern=group_pattern, group_duplicates=args.group_duplicates, valid_pct=args.valid_pct,
                      test_pct=args.test_pct, seed=args.seed, overwrite=args.overwrite)
    try:
        if args.format == "check":
            return _check(args)
        if args.format == "gerber":
            from pcbseg.data.gerber.importer import import_gerber

            result = import_gerber(args.boards, args.out, px_per_mm=args.px_per_mm, renders=args.renders, size=args.size,
                                   render_px_per_mm=tuple(args.render_px_per_mm), taxonomy=args.taxonomy,
                                   outside=args.outside, full=not args.no_full, seed=args.seed, valid_pct=args.valid_pct,
                                   test_pct=args.test_pct, overwrite=args.overwrite, look=args.look)
        elif args.format == "photos":
            from pcbseg.data.photo.importer import import_photos
            from pcbseg.data.photo.register import Limits

            result = import_photos(args.boards, args.out, taxonomy=args.taxonomy, outside=args.outside,
                                   boundary_ignore=_boundary(args.boundary_ignore), max_side=args.max_side,
                                   px_per_mm=args.px_per_mm,
                                   crop=not args.no_crop, limits=Limits(max_residual_mm=args.max_residual),
                                   points=args.points, points_fixed=args.points_fixed,
                                   extra_ignore=_ignore_regions(args.ignore_region), occlusion=not args.no_occlusion,
                                   correction=not args.no_correction, valid_pct=args.valid_pct, test_pct=args.test_pct,
                                   seed=args.seed, overwrite=args.overwrite)
        elif args.format == "merge":
            from pcbseg.data.merge import merge_datasets

            result = merge_datasets(args.roots, args.out, overwrite=args.overwrite)
        elif args.format == "masks":
            from pcbseg.data.import_masks import import_masks

            result = import_masks(args.images, args.masks, args.out, [c.strip() for c in args.classes.split(",")],
                                  mode=args.mode, threshold=args.threshold, foreground=args.foreground,
                                  colour_map=_colour_map(args.colour_map), **common)
        elif args.format in ("coco", "yolo", "cvat"):
            shapes = dict(classes=args.classes, mapping=_mapping(args.map, args.map_file), unmapped=args.unmapped,
                          strict=args.strict, boxes_as_masks=args.boxes_as_masks, keep_split=args.keep_split)
            if args.format == "coco":
                from pcbseg.data.import_coco import import_coco

                result = import_coco(args.sources, args.out, images=args.images, panoptic_masks=args.panoptic_masks,
                                     check_pixels=not args.no_pixel_check, **shapes, **common)
            elif args.format == "yolo":
                from pcbseg.data.import_yolo import import_yolo

                result = import_yolo(args.root, args.out,
                                     check_pixels=not args.no_pixel_check, **shapes, **common)
            else:
                from pcbseg.data.import_cvat import import_cvat

                result = import_cvat(args.xml, args.out, images=args.images, **shapes, **common)
    except (FileNotFoundError, FileExistsError, ValueError, DatasetError) as e:
        if debugging():
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    for f, why in result.skipped:
        print(f"skipped: {f}: {why}", file=sys.stderr)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    shown = 20
    for image, shape, why in result.dropped[:shown]:
        print(f"dropped: {image}: {shape}: {why}", file=sys.stderr)
    if len(result.dropped) > shown:
        print(f"dropped: ... and {len(result.dropped) - shown} more shape(s), all listed in import_report.md",
              file=sys.stderr)
    dropped = f", {len(result.dropped)} shape(s) dropped" if result.dropped else ""
    print(f"Imported {len(result.imported)} images into {result.root} ({len(result.skipped)} skipped{dropped}); "
          f"see {result.root / 'import_report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
