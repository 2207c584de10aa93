"""``pcbseg-import photos``: real photographs of boards, labelled pixel by pixel from their own files.

A board folder holds ``gerber/`` (Gerber and Excellon files), ``photos/`` and, optionally,
``board.json`` (each photo's ``side``: ``top``, ``bottom``, or ``both`` with ``boards_in_photo``
when a photo shows several boards; ``ignore_regions`` in Gerber mm). Each photo is registered to
the side it shows (:mod:`.register`; without a side both are tried and the clearer one kept), its
labels transferred (:mod:`.transfer`), and it is written at its own resolution (or smaller:
``max_side`` pixels, ``px_per_mm``), cropped around the board. A photo whose registration is not
confident is skipped with the reason and never written with doubtful labels; the other photos
still import. The group of every image
is its board. ``import_report.md`` gives each photo's residual, confidence, time, class shares and
an overlay thumbnail (``overlays/``); ``registration.json`` keeps the homographies.

Points (``points``): a CSV ``photo,x_px,y_px,x_mm,y_mm`` (photo = file name; mm as in the Gerber
files), at least 4 rows per photo, used as the start of the search, or as the fit itself with
``points_fixed``.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pcbseg.data.gerber.example import write_example_board
    >>> from pcbseg.data.gerber.labels import label_board
    >>> from pcbseg.data.photo.frame import SideFrame
    >>> tmp = Path(tempfile.mkdtemp())
    >>> board = tmp / "demo"
    >>> _ = write_example_board(board / "gerber")
    >>> frame = SideFrame(label_board(board / "gerber", px_per_mm=20)[1][0])
    >>> truth = np.array([[20.0, 2, 30], [-1, 20, 25], [0, 0, 1]])
    >>> photo = cv2.warpPerspective(frame.appearance_render(20), truth @ frame.grid(20), (420, 320), borderValue=(90, 80, 60))
    >>> (board / "photos").mkdir()
    >>> _ = cv2.imwrite(str(board / "photos" / "shot.png"), photo)
    >>> result = import_photos([board], tmp / "ds", limits=Limits(min_blocks=5, min_coverage=0.1), valid_pct=0)
    >>> result.imported, result.rows[0].group
    (['demo_shot'], 'demo')
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pcbseg.data.builder import DatasetBuilder, ImportResult
from pcbseg.data.gerber.files import GerberError
from pcbseg.data.gerber.labels import SideLabels, label_board
from pcbseg.data.photo.fine import PhotoPyramid, try_correction
from pcbseg.data.photo.frame import BARE, HOLE, MASK, SILK, SideFrame
from pcbseg.data.photo.register import Limits, Registration, quad, register_photo
from pcbseg.data.photo.transfer import boundary_width, transfer_labels
from pcbseg.jsonfile import write_json
from pcbseg.taxonomy import Taxonomy, get_taxonomy

log = logging.getLogger(__name__)

PHOTO_EXT = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
REGISTRATION_FILE = "registration.json"
REGISTER_PPM = 16.0


@dataclass
class PhotoSpec:
    path: Path
    side: str  # top, bottom, or auto (try both)
    boards: int = 1  # board instances to look for
    ignore_regions: tuple[tuple[float, float, float, float], ...] = ()


class BoardError(ValueError):
    """A board folder that cannot be used: every one of its photos is skipped with this reason."""


def read_board(board_dir: Path) -> list[PhotoSpec]:
    """The photos of a board folder with what ``board.json`` says about them."""
    photos_dir = board_dir / "photos"
    if not photos_dir.is_dir():
        raise BoardError(f"{board_dir}: no photos/ folder")
    meta: dict = {}
    if (board_dir / "board.json").is_file():
        try:
            meta = json.loads((board_dir / "board.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise BoardError(f"{board_dir / 'board.json'}: cannot be read as JSON ({e})") from e
    regions = tuple(_regions(meta.get("ignore_regions", []), board_dir / "board.json"))
    by_file = {p.get("file"): p for p in meta.get("photos", []) if isinstance(p, dict)}
    specs = []
    for path in sorted(p for p in photos_dir.iterdir() if p.suffix.lower() in PHOTO_EXT):
        entry = by_file.get(path.name, {})
        side = entry.get("side", "auto")
        if side not in ("top", "bottom", "both", "auto"):
            raise BoardError(f"{board_dir / 'board.json'}: photo {path.name}: side must be top, bottom or both, got {side!r}")
        n = len(meta.get("boards_in_photo", [])) if side == "both" else 1
        own = tuple(_regions(entry.get("ignore_regions", []), board_dir / "board.json"))
        specs.append(PhotoSpec(path, "auto" if side == "both" else side, max(n, 1), regions + own))
    if not specs:
        raise BoardError(f"{photos_dir}: no photos ({', '.join(PHOTO_EXT)})")
    return specs


def _regions(items: list, where: Path) -> list[tuple[float, float, float, float]]:
    """``ignore_regions`` entries: ``{"x": [x0, x1], "y": [y0, y1]}`` or ``[x0, y0, x1, y1]`` (Gerber mm)."""
    out = []
    for item in items:
        try:
            if isinstance(item, dict):
                (x0, x1), (y0, y1) = item["x"], item["y"]
            else:
                x0, y0, x1, y1 = item
            out.append((float(min(x0, x1)), float(min(y0, y1)), float(max(x0, x1)), float(max(y0, y1))))
        except (KeyError, TypeError, ValueError) as e:
            raise BoardError(f"{where}: ignore region {item!r} is not {{'x': [x0, x1], 'y': [y0, y1]}} "
                             "or [x0, y0, x1, y1]") from e
    return out


def read_points(path: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """A points CSV -> {photo file name: [(x_px, y_px, x_mm, y_mm), ...]}."""
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e})") from e
    need = {"photo", "x_px", "y_px", "x_mm", "y_mm"}
    for i, row in enumerate(rows, start=2):
        if not need <= set(row):
            raise ValueError(f"{path}: the header must name {', '.join(sorted(need))}")
        try:
            out.setdefault(Path(row["photo"]).name, []).append(tuple(float(row[k]) for k in ("x_px", "y_px", "x_mm", "y_mm")))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: line {i}: not a number ({e})") from e
    for photo, pts in out.items():
        if len(pts) < 4:
            raise ValueError(f"{path}: photo {photo} has {len(pts)} correspondences; at least 4 are needed")
    return out


class _Board:
    """A board's sides at the registration resolution, and at others on demand (cached)."""

    def __init__(self, board_dir: Path):
        gerber = board_dir / "gerber" if (board_dir / "gerber").is_dir() else board_dir
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            files, sides = label_board(gerber, REGISTER_PPM)
        if files.get(None, "outline") is None:
            raise BoardError(f"{gerber}: no board outline file (Edge.Cuts / .gm1 / .gko): the board's edge is unknown")
        if not files.drills:
            raise BoardError(f"{gerber}: no drill file: holes could not be labelled")
        self.gerber = gerber
        self.frames = {s.side: SideFrame(s) for s in sides}
        self._cache: dict[float, dict[str, SideLabels]] = {}

    def labels(self, side: str, ppm: float) -> SideLabels:
        # a few resolutions serve every photo; beyond 30 px/mm (33 um) nearest-neighbour upsampling is exact enough
        key = float(min(30.0, max(10.0, 5 * math.ceil(ppm / 5))))
        if key not in self._cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._cache[key] = {s.side: s for s in label_board(self.gerber, key)[1]}
        return self._cache[key][side]


def _box(reg: Registration, shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    q = quad(reg.fit.h, reg.frame)
    x0, y0 = q.min(0)
    x1, y1 = q.max(0)
    m = margin * max(x1 - x0, y1 - y0)
    h, w = shape
    return (int(max(0, math.floor(x0 - m))), int(max(0, math.floor(y0 - m))), int(min(w, math.ceil(x1 + m))),
            int(min(h, math.ceil(y1 + m))))


def overlay(rgb: np.ndarray, frame: SideFrame, h: np.ndarray, long_side: int = 640) -> np.ndarray:
    """The photo with the files' edges drawn over it: board outline and mask (blue), copper and pads
    (yellow), legend (cyan), drills (magenta)."""
    s = min(1.0, long_side / max(rgb.shape[:2]))
    small = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb.copy()
    ppm = 8.0
    cls = frame.classes(ppm)
    warped = cv2.warpPerspective(cls, np.diag([s, s, 1]) @ h @ frame.grid(ppm), small.shape[1::-1], flags=cv2.INTER_NEAREST)
    for k, colour in ((MASK, (60, 120, 255)), (BARE, (255, 230, 0)), (SILK, (0, 255, 255)), (HOLE, (255, 0, 255))):
        contours, _ = cv2.findContours((warped >= k).astype(np.uint8) if k == MASK else (warped == k).astype(np.uint8),
                                       cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(small, contours, -1, colour, 1)
    return small


def import_photos(boards: Sequence[str | Path], out: str | Path, taxonomy: str | Taxonomy = "default",
                  outside: str = "ignore", boundary_ignore: str | int = "auto", max_side: int | None = None,
                  px_per_mm: float | None = None,
                  margin: float = 0.08, crop: bool = True, limits: Limits | None = None, points: str | Path | None = None,
                  points_fixed: bool = False, extra_ignore: dict[str, list[tuple[float, float, float, float]]] | None = None,
                  occlusion: bool = True, correction: bool = True, valid_pct: float = 0.2, test_pct: float = 0.0,
                  seed: int = 0, overwrite: bool = False) -> ImportResult:
    """Build a dataset at ``out`` from board folders; see the module docstring.

    ``extra_ignore`` adds ignore regions (Gerber mm boxes) by board folder name or ``board/photo``.
    """
    tax = get_taxonomy(taxonomy) if isinstance(taxonomy, str) else taxonomy
    if outside not in ("ignore", "background"):
        raise ValueError(f"outside must be 'ignore' or 'background', got {outside!r}")
    if boundary_ignore != "auto" and int(boundary_ignore) < 0:
        raise ValueError(f"boundary_ignore must be 'auto' or a number of pixels >= 0, got {boundary_ignore!r}")
    limits = limits or Limits()
    pts = read_points(Path(points)) if points else {}
    extra_ignore = extra_ignore or {}
    out = Path(out)
    records, rows, prep = [], [], {}
    with DatasetBuilder(out, tax, source=", ".join(str(b) for b in boards), overwrite=overwrite) as builder:
        (builder.tmp / "overlays").mkdir()
        for board_dir in map(Path, boards):
            name = board_dir.resolve().name
            start = time.perf_counter()
            try:
                specs = read_board(board_dir)
                board = _Board(board_dir)
            except (BoardError, GerberError) as e:
                builder.skip(board_dir, str(e))
                continue
            prep[name] = time.perf_counter() - start
            for spec in specs:
                start = time.perf_counter()
                regions = [*spec.ignore_regions, *extra_ignore.get(name, []), *extra_ignore.get(f"{name}/{spec.path.name}", [])]
                try:
                    done = _one_photo(builder, board, name, spec, tax, outside, boundary_ignore, max_side, px_per_mm, margin,
                                      crop, limits,
                                      pts.get(spec.path.name), points_fixed, regions, occlusion, correction)
                except (OSError, ValueError) as e:
                    builder.skip(spec.path, str(e))
                    continue
                seconds = time.perf_counter() - start
                for rec in done:
                    rec["seconds"] = round(seconds, 1)
                    records.append(rec)
        builder.notes += [f"Labels registered from each board's Gerber and drill files; outside the board: {outside}; "
                          f"boundary band: {boundary_ignore}; a photo is written only with a median residual ≤ "
                          f"{limits.max_residual_mm} mm and a confident fit. The group of every image is its board.", ""]
        rows = _report_rows(records, tax)
        builder.sections += ["## Photos", "", "Residual: median misfit of the matched blocks in the verification pass "
                             "(held out when a smooth correction is applied); seconds per photo, after reading the board's "
                             "files once (" + ", ".join(f"{k} {v:.1f} s" for k, v in prep.items()) + ").", "", *rows]
        write_json(builder.tmp / REGISTRATION_FILE, records, indent=1)
        return builder.finish(valid_pct, test_pct, seed, group_pattern=None, check_pixels=False)


def _one_photo(builder: DatasetBuilder, board: _Board, name: str, spec: PhotoSpec, tax: Taxonomy, outside: str,
               boundary_ignore: str | int, max_side: int | None, px_per_mm: float | None, margin: float, crop: bool,
               limits: Limits,
               points: list | None, points_fixed: bool, regions: list, occlusion: bool, correction: bool) -> list[dict]:
    bgr = cv2.imread(str(spec.path), cv2.IMREAD_COLOR)  # applies the EXIF orientation
    if bgr is None:
        raise ValueError("cannot be read as an image (missing, corrupt or unsupported format)")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    sides = [spec.side] if spec.side in board.frames else list(board.frames)
    if spec.side not in ("auto", *board.frames):
        raise ValueError(f"board.json says side {spec.side}, but the files have no {spec.side} copper")
    frames = [board.frames[s] for s in sides]
    point_arg = None
    if points:
        if len(sides) != 1:
            raise ValueError("--points needs the photo's side in board.json (top or bottom)")
        arr = np.array(points, np.float64)
        frame = frames[0]
        mm = np.array([frame.gerber_to_frame(x, y) for x, y in arr[:, 2:]])
        point_arg = (sides[0], arr[:, :2], mm)
    regs = register_photo(rgb, frames, limits, max_boards=spec.boards, points=point_arg, points_fixed=points_fixed,
                          other_sides=list(board.frames.values()), side_given=spec.side != "auto")
    if not regs:
        raise ValueError("no board found: nothing in the photo matches the files (another board, or no board?)")
    out = []
    several = len(regs) > 1 or spec.boards > 1
    confident = sum(r.ok for r in regs)
    if spec.boards > 1 and confident < spec.boards and (not regs or regs[-1].ok):
        builder.skip(spec.path, f"{spec.boards} boards expected (board.json), {confident} found with a confident fit")
    for k, reg in enumerate(regs):
        tag = f"{name}_{spec.path.stem}" + (f"_{k + 1}" if several else "")
        fit = reg.fit
        if correction and reg.ok:
            try_correction(fit)
        rec = {"id": tag, "board": name, "photo": spec.path.name, "side": reg.frame.side, "source": reg.source,
               "residual_mm": _r(fit.residual_mm), "rigid_residual_mm": _r(fit.rigid_residual_mm), "p90_mm": _r(fit.p90_mm),
               "rms_mm": _r(fit.rms_mm),
               "lens_k": None if fit.lens is None else fit.lens.k.round(6).tolist(), "confidence": round(reg.confidence, 3),
               "blocks": fit.inliers,
               "blocks_matched": fit.blocks, "coverage": round(fit.coverage, 3), "rival": round(reg.rival, 3),
               "rival_side": reg.rival_side, "photo_px_per_mm": round(fit.ppm, 2),
               "correction": "lens" if fit.lens is not None else "bow" if fit.correction is not None else None,
               "points_loo_mm": reg.points_rms_mm, "h_mm_to_photo_px": np.round(fit.h, 8).tolist(), "written": False}
        if not reg.ok:
            why = "; ".join(reg.reasons)
            builder.skip(spec.path, (f"board {k + 1}: " if several else "") + f"registration not confident: {why}")
            rec["reasons"] = reg.reasons
            out.append(rec)
            continue
        box = _box(reg, rgb.shape[:2], margin) if several or crop else (0, 0, rgb.shape[1], rgb.shape[0])
        scale = 1.0
        if max_side and max(box[2] - box[0], box[3] - box[1]) > max_side:
            scale = max_side / max(box[2] - box[0], box[3] - box[1])
        if px_per_mm and fit.ppm > px_per_mm:
            scale = min(scale, px_per_mm / fit.ppm)
        x0, y0, x1, y1 = box
        image = rgb[y0:y1, x0:x1]
        move = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
        if scale < 1:
            image = cv2.resize(image, (round((x1 - x0) * scale), round((y1 - y0) * scale)), interpolation=cv2.INTER_AREA)
            move = np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1]]) @ move
        warp = fit.warp.then(move)  # into the written image's pixels
        window = (0, 0, image.shape[1], image.shape[0])
        ppm = fit.ppm * scale
        band = boundary_width(fit.residual_mm, ppm, boundary_ignore)
        labels = board.labels(reg.frame.side, ppm)
        pyr = PhotoPyramid(image)
        mask, info = transfer_labels(pyr, reg.frame, labels, warp, tax, window, outside, band, regions, occlusion,
                                     fit.residual_mm)
        h = warp.homography()
        if not builder.add(tag, image, mask, group=name, source_file=spec.path, image_ext=".jpg"):
            continue
        thumb = overlay(image, reg.frame, h)
        cv2.imwrite(str(builder.tmp / "overlays" / f"{tag}.jpg"), thumb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        counts = np.bincount(mask.ravel(), minlength=256)
        labelled = max(int(counts[: tax.num_classes].sum()), 1)
        rec.update(written=True, box=list(box), scale=round(scale, 5), boundary_px=band, placed_components=info.placed,
                   unexpected_share=round(info.unexpected_share, 4), region_share=round(info.region_share, 4),
                   shares={n: round(float(counts[i]) / labelled, 4) for i, n in enumerate(tax.names)},
                   ignored_share=round(float(counts[tax.ignore_index]) / mask.size, 4), size=[image.shape[1], image.shape[0]])
        out.append(rec)
    return out


def _r(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 4)


def _report_rows(records: list[dict], tax: Taxonomy) -> list[str]:
    head = ("| image | side | residual mm (px) | p90 mm | confidence | matched blocks | corrected | seconds | "
            + " | ".join(tax.names) + " | ignored | overlay |")
    rows = [head, "|" + "---|" * (10 + tax.num_classes)]
    for r in records:
        if not r["written"]:
            continue
        px = r["residual_mm"] * r["photo_px_per_mm"] * r["scale"] if r["residual_mm"] is not None else float("nan")
        shares = " | ".join(f"{100 * r['shares'][n]:.1f}%" for n in tax.names)
        rows.append(f"| {r['id']} | {r['side']} | {r['residual_mm']:.3f} ({px:.1f}) | {r['p90_mm']:.3f} | "
                    f"{r['confidence']:.2f} | {r['blocks']} | {r['correction'] or 'none'} | {r['seconds']} | {shares} | "
                    f"{100 * r['ignored_share']:.1f}% | ![](overlays/{r['id']}.jpg) |")
    return rows
