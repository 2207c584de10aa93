"""A board's fabrication files -> per-side pixel layers and a label map in the PCB taxonomy.

Each copper object is labelled by its X2 aperture function when the file gives one:

- ``Conductor``, ``EtchedComponent``, ``NonConductor`` -> trace;
- ``ViaPad`` (and drills whose tool says ``ViaDrill``) -> via;
- ``SMDPad``, ``ComponentPad``, ``ConnectorPad`` and the other pad functions -> pad;
- non-plated drills and the drills of pads -> hole; the legend layer, minus soldermask openings ->
  silkscreen.

Otherwise it is labelled by rule (EAGLE, EasyEDA, old KiCad, Altium without attributes): a flash
with a plated drill hit at its centre is a via when the soldermask covers it or when it is small
(pad <= 1.0 mm, drill <= 0.5 mm), else a through-hole pad; other flashes mostly under a soldermask
opening, and regions smaller than 1 cm² mostly under one, are pads; drawn lines and arcs, and the
remaining regions (copper pours), are traces.
:attr:`SideLabels.by_rule` counts the objects labelled by rule.

Components are bodies placed over the pads of one reference designator (the ``.C`` / ``.P``
object attributes), or, without them, over clusters of solder-paste openings; sizes follow the pad
pattern (see :func:`body_from_pads`). Pixels outside the board outline are ``ignore`` (or
``background``, by choice).

Example:
    >>> body_from_pads(np.array([[0, 0], [1.9, 0]]), np.array([[1.0, 1.45], [1.0, 1.45]]))  # a 0805 footprint
    ((0.95, 0.0), (2.0, 1.305), 0.0)
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from gerbonara import graphic_objects as go
from gerbonara.utils import MM

from pcbseg.data.gerber.files import (
    SIDES,
    BoardFiles,
    DrillFile,
    GerberError,
    aperture_function,
    component_of,
    identify,
    read_drill,
    read_gerber,
)
from pcbseg.data.gerber.raster import Canvas
from pcbseg.taxonomy import Taxonomy

TRACE_FUNCTIONS = {"Conductor", "EtchedComponent", "NonConductor"}
PAD_FUNCTIONS = {"SMDPad", "ComponentPad", "ConnectorPad", "WasherPad", "TestPad", "HeatsinkPad", "CastellatedPad",
                 "BGAPad", "FiducialPad", "ThermalReliefPad", "AntiPad"}
SKIPPED_FUNCTIONS = {"Profile", "NonMaterial", "Other"}
VIA_MAX_PAD_MM, VIA_MAX_DRILL_MM = 1.0, 0.5
MARGIN_MM = 1.0
# Reference-designator prefix -> the finest class name (taxonomy.resolve folds it into its class).
_KINDS = [(r"^(R|RN|RV)\d", "resistor"), (r"^C\d", "capacitor"), (r"^(L|FB)\d", "inductor"),
          (r"^(Q|D|LED|T|ZD)\d", "transistor"), (r"^(U|IC|Y|X|OSC|XTAL)\d", "ic"),
          (r"^(J|P|CN|CON|USB|SW|S|K|BT|JP)\d", "connector")]
_SKIP_REFS = re.compile(r"^(TP|H|MH|FID|REF|G|LOGO|#|KIBUZZARD)|\*|\\u002A", re.I)


def kind_of(ref: str) -> str | None:
    for pattern, kind in _KINDS:
        if re.match(pattern, ref, re.I):
            return kind
    return None


@dataclass
class Component:
    ref: str
    kind: str
    rect_mm: tuple[tuple[float, float], tuple[float, float], float]  # ((cx, cy), (w, h), degrees)


@dataclass
class SideLabels:
    """Hard 0/1 layers of one side at ``canvas`` resolution, as a camera above that side sees them."""

    side: str
    canvas: Canvas
    board: np.ndarray
    trace: np.ndarray
    via: np.ndarray
    via_drill: np.ndarray
    pad: np.ndarray
    hole: np.ndarray
    silk: np.ndarray
    mask_open: np.ndarray
    components: list[Component] = field(default_factory=list)
    component_ids: np.ndarray | None = None  # 0 = none, k = components[k - 1]
    counts: dict[str, int] = field(default_factory=dict)  # objects per class, from the files
    by_attribute: int = 0
    by_rule: int = 0
    notes: list[str] = field(default_factory=list)

    def label_map(self, taxonomy: Taxonomy, outside: str = "ignore") -> np.ndarray:
        """Class ids by what a camera sees from above: later layers cover earlier ones."""
        lab = np.full(self.board.shape, taxonomy.resolve("background"), np.uint8)
        for layer, name in ((self.trace, "trace"), (self.via | self.via_drill, "via"), (self.pad, "pad"),
                            (self.hole & ~self.via_drill, "hole"), (self.silk, "silkscreen")):
            lab[layer > 0] = taxonomy.resolve(name)
        if self.component_ids is not None:
            for k, comp in enumerate(self.components, start=1):
                lab[self.component_ids == k] = taxonomy.resolve(comp.kind)
        if outside == "ignore":
            lab[self.board == 0] = taxonomy.ignore_index
        elif outside != "background":
            raise ValueError(f"outside must be 'ignore' or 'background', got {outside!r}")
        return lab


def _bbox_mm(objects) -> tuple[float, float, float, float] | None:
    boxes = []
    for o in objects:
        try:
            (x0, y0), (x1, y1) = o.bounding_box(unit=MM)
        except Exception:  # zero-size or degenerate objects
            continue
        if all(map(math.isfinite, (x0, y0, x1, y1))):
            boxes.append((x0, y0, x1, y1))
    if not boxes:
        return None
    b = np.array(boxes)
    return b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()


def _centre_mm(obj) -> tuple[float, float]:
    c = obj.converted(MM)
    return float(c.x), float(c.y)


@dataclass
class _Drill:
    x: float
    y: float
    d: float
    plated: bool
    via: bool | None  # from X2 ViaDrill / ComponentDrill; None when the file does not say
    obj: object


def _drills(files: list[DrillFile]) -> list[_Drill]:
    out = []
    for f in files:
        for obj in f.objects:
            tool = obj.tool
            number = f.tool_of.get(id(tool))
            fn = f.functions.get(number) if number is not None else None
            plated = f.plated_tools.get(number, tool.plated if tool.plated is not None else f.plated)
            plated = True if plated is None else bool(plated)  # unlabelled drill files are mostly PTH
            via = True if fn == "ViaDrill" else (False if fn else None)
            d = float(MM(tool.diameter, tool.unit))
            if isinstance(obj, go.Flash):
                x, y = _centre_mm(obj)
            else:  # a routed slot: its middle stands for it in the via test
                c = obj.converted(MM)
                x, y = (c.x1 + c.x2) / 2, (c.y1 + c.y2) / 2
            out.append(_Drill(x, y, d, plated, via, obj))
    return out


def _board_outline(canvas: Canvas, outline_objects: list | None) -> tuple[np.ndarray, str | None]:
    """Pixels inside the outline (flood fill from the margin); None-note when there is no usable outline."""
    h, w = canvas.shape
    if not outline_objects:
        return np.ones((h, w), np.uint8), "no outline file: the whole copper extent counts as board"
    lines = canvas.blank()
    for obj in outline_objects:
        for prim in obj.to_primitives(unit=MM):
            if hasattr(prim, "width"):  # draw edges at least 2 px wide so the fill cannot leak through
                prim = type(prim)(**{**prim.__dict__, "width": max(prim.width, 2 / canvas.px_per_mm)})
            canvas.draw_primitive(lines, prim, 1)
    fill = lines.copy()
    ff = np.zeros((h + 2, w + 2), np.uint8)
    cv2.floodFill(fill, ff, (0, 0), 2)
    board = (fill != 2).astype(np.uint8)
    if board.mean() > 0.98 or board.sum() == lines.sum():
        return np.ones((h, w), np.uint8), "outline is not closed: the whole copper extent counts as board"
    return board, None


def body_from_pads(centres: np.ndarray, sizes: np.ndarray) -> tuple[tuple[float, float], tuple[float, float], float]:
    """A plausible body (rotated rect, mm) over a part's pads: ``centres`` and ``sizes`` are N x 2 in mm.

    Two pads (chips): the body reaches a little past the pad centres, as wide as 0.9 of the pads.
    One row (headers, connectors): the row plus a 1.3 mm shroud on each side. Two rows or a ring
    (SOIC, QFP, QFN): the rectangle of the pad centres, inset by a third of the pad length so the
    leads stay partly visible.
    """
    if len(centres) == 2:
        (x1, y1), (x2, y2) = centres
        angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
        along = abs(math.cos(math.radians(angle)))
        pad_along = float(np.mean(sizes[:, 0] * along + sizes[:, 1] * (1 - along)))
        pad_across = float(np.mean(sizes[:, 1] * along + sizes[:, 0] * (1 - along)))
        length = math.hypot(x2 - x1, y2 - y1) + pad_along * 0.1
        return ((float((x1 + x2) / 2), float((y1 + y2) / 2)), (round(length, 4), round(pad_across * 0.9, 4)),
                round(angle % 180, 4))
    (cx, cy), (w, h), angle = cv2.minAreaRect(centres.astype(np.float32))
    pad = float(np.max(sizes))
    if min(w, h) < 0.3 * pad:  # a single row
        w, h = (w + pad, pad + 2.6) if w >= h else (pad + 2.6, h + pad)
    else:
        w, h = max(w - pad / 3, 0.6 * w), max(h - pad / 3, 0.6 * h)
    return (float(cx), float(cy)), (float(w), float(h)), float(angle)


def _draw_rect(layer: np.ndarray, canvas: Canvas, rect_mm, value: int) -> None:
    (cx, cy), (w, h), angle = rect_mm
    pts = cv2.boxPoints(((0.0, 0.0), (w, h), angle))
    corners = [canvas.px(cx + x, cy + y) for x, y in pts]
    cv2.fillPoly(layer, [np.round(np.array(corners) * 16 - 8).astype(np.int32)], value, cv2.LINE_8, 4)


def label_side(files: BoardFiles, side: str, px_per_mm: float, drills: list[_Drill] | None = None,
               outline: list | None = None, extent: tuple[float, float, float, float] | None = None) -> SideLabels:
    """Rasterise one side of a board (``top`` or ``bottom``); the bottom is mirrored, as seen from below."""
    copper_path = files.get(side, "copper")
    if copper_path is None:
        raise GerberError(files.root, f"no {side} copper layer")
    copper = read_gerber(copper_path)
    if drills is None:
        drills = _drills([read_drill(p) for p in files.drills])
    if outline is None and files.get(None, "outline"):
        outline = read_gerber(files.get(None, "outline")).objects
    bb = extent or _bbox_mm(outline or copper.objects)
    if bb is None:
        raise GerberError(copper_path, "has no drawable objects")
    x0, y0, x1, y1 = bb
    canvas = Canvas(x0 - MARGIN_MM, y0 - MARGIN_MM, x1 - x0 + 2 * MARGIN_MM, y1 - y0 + 2 * MARGIN_MM, px_per_mm)
    notes = []
    board, note = _board_outline(canvas, outline)
    if note:
        notes.append(note)

    def layer_of(kind: str) -> np.ndarray:
        path = files.get(side, kind)
        out = canvas.blank()
        if path is not None:
            canvas.draw(out, read_gerber(path).objects)
        return out

    mask_open = layer_of("mask")
    if files.get(side, "mask") is None:
        notes.append(f"no {side} soldermask layer: pads are told from traces by attribute or shape only")
    trace, via, pad = canvas.blank(), canvas.blank(), canvas.blank()
    layers = {"trace": trace, "via": via, "pad": pad}
    plated = [d for d in drills if d.plated]
    pxy = np.array([(d.x, d.y) for d in plated]) if plated else np.zeros((0, 2))
    counts = {"trace": 0, "via": 0, "pad": 0}
    by_attr = by_rule = 0
    via_centres: list[tuple[float, float]] = []
    pads_by_ref: dict[str, list[tuple[float, float, float, float]]] = {}

    def exposed(obj) -> float:
        """Share of the object's own pixels under a soldermask opening."""
        bb_obj = _bbox_mm([obj])
        if bb_obj is None:
            return 0.0
        sub, r0, c0 = canvas.window(*bb_obj)
        own = sub.blank()
        sub.draw(own, [obj], 1)
        under = mask_open[r0:r0 + own.shape[0], c0:c0 + own.shape[1]]
        return float(under[own > 0].mean()) if own.any() else 0.0

    def drill_at(x: float, y: float, radius: float) -> _Drill | None:
        if not len(pxy):
            return None
        dist = np.hypot(pxy[:, 0] - x, pxy[:, 1] - y)
        k = int(dist.argmin())
        return plated[k] if dist[k] < radius else None

    clear: list = []
    for obj in copper.objects:
        if not obj.polarity_dark:
            clear.append(obj)
            continue
        clear = _erase(canvas, layers, clear)
        fn = aperture_function(obj)
        if fn in SKIPPED_FUNCTIONS:
            continue
        cls = class_by_attribute(fn)
        if cls is not None:
            by_attr += 1
        else:
            by_rule += 1
            cls = class_by_rule(obj, exposed, drill_at)
        canvas.draw(layers[cls], [obj], 1)
        if cls in ("via", "pad") and isinstance(obj, (go.Flash, go.Region)):
            counts[cls] += 1
            if cls == "via" and isinstance(obj, go.Flash):
                via_centres.append(_centre_mm(obj))
            ref = component_of(obj)
            if cls == "pad" and ref:
                b = _bbox_mm([obj])
                if b is not None:
                    pads_by_ref.setdefault(ref, []).append(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]))
        elif cls == "trace":
            counts["trace"] += 1
    _erase(canvas, layers, clear)

    hole, via_drill = canvas.blank(), canvas.blank()
    vxy = np.array(via_centres) if via_centres else np.zeros((0, 2))
    for d in drills:
        is_via = d.via
        if is_via is None:
            is_via = d.plated and len(vxy) > 0 and float(np.hypot(vxy[:, 0] - d.x, vxy[:, 1] - d.y).min()) < 0.05
        canvas.draw(via_drill if is_via else hole, [d.obj], 1)
    silk = layer_of("silk")
    silk &= 1 - np.minimum(mask_open, 1)  # fabs do not print legend on exposed copper

    labels = SideLabels(side, canvas, board, trace, via, via_drill, pad, hole, silk, mask_open, counts=counts,
                        by_attribute=by_attr, by_rule=by_rule, notes=notes)
    labels.components = _components(pads_by_ref) if pads_by_ref else _components_from_paste(files, side, canvas)
    if not pads_by_ref:
        labels.notes.append(f"{side}: no .C/.P attributes; components placed on solder-paste clusters"
                            if labels.components else f"{side}: no component information (no .C/.P attributes, no paste layer)")
    ids = canvas.blank()
    for k, comp in enumerate(labels.components, start=1):
        _draw_rect(ids, canvas, comp.rect_mm, k)
    labels.component_ids = ids
    if side == "bottom":
        _mirror(labels)
    return labels


def class_by_attribute(function: str | None) -> str | None:
    """trace / via / pad from an X2 aperture function; None when it says nothing about that."""
    if function == "ViaPad":
        return "via"
    if function in PAD_FUNCTIONS:
        return "pad"
    return "trace" if function in TRACE_FUNCTIONS else None


def class_by_rule(obj, exposed: Callable[[object], float], drill_at: Callable[[float, float, float], _Drill | None]) -> str:
    """The fallback for copper without attributes (see the module docstring).

    ``exposed(obj)`` is the share of the object under a soldermask opening; ``drill_at(x, y, r)``
    the plated drill hit within ``r`` mm of a point, if any.
    """
    if isinstance(obj, go.Flash):
        x, y = _centre_mm(obj)
        (bx0, by0), (bx1, by1) = obj.bounding_box(unit=MM)
        hit = drill_at(x, y, min(bx1 - bx0, by1 - by0) / 2)
        open_share = exposed(obj)
        if hit is None:
            return "pad" if open_share >= 0.5 else "trace"
        if hit.via is not None:
            return "via" if hit.via else "pad"
        small = max(bx1 - bx0, by1 - by0) <= VIA_MAX_PAD_MM and hit.d <= VIA_MAX_DRILL_MM
        return "via" if open_share < 0.5 or small else "pad"
    if isinstance(obj, go.Region):
        bb = _bbox_mm([obj])
        small = bb is not None and (bb[2] - bb[0]) * (bb[3] - bb[1]) < 100  # pours are larger than 1 cm²
        return "pad" if small and exposed(obj) >= 0.5 else "trace"
    return "trace"


def _erase(canvas: Canvas, layers: dict[str, np.ndarray], clear: list) -> list:
    """Apply a run of clear-polarity objects to every copper class; returns the emptied run."""
    if clear:
        erase = canvas.blank()
        canvas.draw(erase, clear, 1)
        for layer in layers.values():
            layer[erase > 0] = 0
    return []


def _components(pads_by_ref: dict[str, list[tuple[float, float, float, float]]]) -> list[Component]:
    out = []
    for ref, pads in sorted(pads_by_ref.items()):
        kind = kind_of(ref)
        if len(pads) < 2 or _SKIP_REFS.search(ref) or kind is None:
            continue
        arr = np.array(pads)
        out.append(Component(ref, kind, body_from_pads(arr[:, :2], arr[:, 2:])))
    return out


def _components_from_paste(files: BoardFiles, side: str, canvas: Canvas) -> list[Component]:
    path = files.get(side, "paste")
    if path is None:
        return []
    paste = canvas.blank()
    objects = read_gerber(path).objects
    if not objects:
        return []
    canvas.draw(paste, objects)
    n_pads, _, stats, centroids = cv2.connectedComponentsWithStats(paste, connectivity=8)
    if n_pads < 3:
        return []
    ppm = canvas.px_per_mm
    centres = np.array([canvas_to_mm(canvas, *centroids[i]) for i in range(1, n_pads)])
    sizes = stats[1:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]] / ppm
    out = []
    for g, members in enumerate(pair_rows(centres, sizes, cluster_pads(centres, sizes))):
        if len(members) < 2:
            continue
        rect = body_from_pads(centres[members], sizes[members])
        if rect[1][0] * rect[1][1] > 200:  # no plausible SMD part: a cluster gone wrong
            continue
        kind = "resistor" if len(members) == 2 else "transistor" if len(members) == 3 else "ic"
        out.append(Component(f"paste{g}", kind, rect))
    return out


def cluster_pads(centres: np.ndarray, sizes: np.ndarray) -> list[list[int]]:
    """Group pads into parts without reference designators (single linkage).

    Two pads are linked when their areas differ by less than 1.6x, the gap between them is at most
    1.2 times the smaller pad's short side, and the other pad lies across this pad's short side:
    the two pads of a chip, neighbours in a row of leads. The next part of a bank of passives lies
    off the long side, and other parts further away.

    >>> cluster_pads(np.array([[0, 0], [1.9, 0], [6, 0], [7.9, 0]]), np.array([[1.0, 1.4]] * 4))
    [[0, 1], [2, 3]]
    """
    n = len(centres)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    area = sizes[:, 0] * sizes[:, 1]
    short = sizes.min(axis=1)
    for i in range(n):
        offset = np.abs(centres - centres[i])
        gap_xy = offset - (sizes + sizes[i]) / 2
        gap = np.maximum(gap_xy, 0).max(axis=1)
        w, h = sizes[i]
        # a chip's partner and a lead's neighbours sit across the pad's short side; the next part in a
        # bank of passives sits off its long side. Square pads link either way.
        if max(w, h) < 1.2 * min(w, h):
            across = np.ones(n, bool)
        else:
            across = offset[:, 0] >= offset[:, 1] if w < h else offset[:, 1] >= offset[:, 0]
        ok = across & (gap <= 1.2 * np.minimum(short, short[i])) & (np.maximum(area, area[i]) < 1.6 * np.minimum(area, area[i]))
        for j in np.nonzero(ok)[0]:
            if j != i:
                parent[find(int(j))] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values())


def pair_rows(centres: np.ndarray, sizes: np.ndarray, groups: list[list[int]]) -> list[list[int]]:
    """Join two rows of leads that face each other (an SOIC, a TSOP) into one part.

    :func:`cluster_pads` links leads only along a row, so a dual-row package comes out as two
    rows. Two rows pair up when they have the same number of pads (3 or more), run parallel
    (within 5°), line up along their length (offset below a fifth of it) and lie 1 to 15 mm apart.

    >>> row = [[x, 0.0] for x in (0, 1.27, 2.54, 3.81)]
    >>> c = np.array(row + [[x, 5.4] for x, _ in row]); s = np.array([[0.6, 1.5]] * 8)
    >>> pair_rows(c, s, [[0, 1, 2, 3], [4, 5, 6, 7]])
    [[0, 1, 2, 3, 4, 5, 6, 7]]
    """
    rows = {}
    for k, members in enumerate(groups):
        if len(members) < 3:
            continue
        (cx, cy), (w, h), angle = cv2.minAreaRect(centres[members].astype(np.float32))
        if min(w, h) < 0.3 * float(np.max(sizes[members])):
            length = max(w, h)
            direction = math.radians(angle if w >= h else angle + 90)
            rows[k] = (np.array([cx, cy]), length, np.array([math.cos(direction), math.sin(direction)]))
    used: set[int] = set()
    out = []
    for i, (ci, li, di) in rows.items():
        if i in used:
            continue
        for j, (cj, lj, dj) in rows.items():
            if j <= i or j in used or len(groups[i]) != len(groups[j]):
                continue
            if abs(float(di @ dj)) < math.cos(math.radians(5)):
                continue
            along = abs(float((cj - ci) @ di))
            across = abs(float((cj - ci) @ np.array([-di[1], di[0]])))
            if along < 0.2 * max(li, lj) and 1.0 <= across <= 15.0 and abs(li - lj) < 0.2 * max(li, lj):
                used |= {i, j}
                out.append(sorted(groups[i] + groups[j]))
                break
    return sorted(out + [g for k, g in enumerate(groups) if k not in used])


def canvas_to_mm(canvas: Canvas, col: float, row: float) -> tuple[float, float]:
    return canvas.x0 + (col + 0.5) / canvas.px_per_mm, canvas.y0 + canvas.height_mm - (row + 0.5) / canvas.px_per_mm


def _mirror(labels: SideLabels) -> None:
    for name in ("board", "trace", "via", "via_drill", "pad", "hole", "silk", "mask_open", "component_ids"):
        setattr(labels, name, np.ascontiguousarray(getattr(labels, name)[:, ::-1]))


def label_board(directory: str | Path, px_per_mm: float = 20.0) -> tuple[BoardFiles, list[SideLabels]]:
    """Both sides of the board in ``directory`` (only sides that have copper)."""
    files = identify(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drills = _drills([read_drill(p) for p in files.drills])
        outline = read_gerber(files.get(None, "outline")).objects if files.get(None, "outline") else None
        extent = _bbox_mm(outline) if outline else None
        if extent is None:
            extent = _bbox_mm([o for s in SIDES if files.get(s, "copper") for o in read_gerber(files.get(s, "copper")).objects])
        sides = [label_side(files, s, px_per_mm, drills, outline, extent) for s in SIDES if files.get(s, "copper")]
    return files, sides
