"""pcbseg-import gerber: layer identification, gerbonara's gaps, labels against the files' own counts,
renders aligned with masks, bad input, and the six real boards in ../shared/data/gerbers."""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from gerbonara import graphic_objects as go
from gerbonara import graphic_primitives as gp
from gerbonara.utils import MM

from pcbseg.cli.import_ import main as import_main
from pcbseg.data.gerber.example import write_example_board
from pcbseg.data.gerber.files import GerberError, aperture_function, identify, read_drill, read_gerber
from pcbseg.data.gerber.labels import PAD_FUNCTIONS, label_board
from pcbseg.data.gerber.raster import Canvas
from pcbseg.data.gerber.render import render_crop
from pcbseg.data.layout import DatasetLayout, read_mask
from pcbseg.data.splits import read_splits
from pcbseg.data.validate import validate_dataset
from pcbseg.taxonomy import get_taxonomy

GERBERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "gerbers"
BOARDS = ["ferris", "tfrpm01", "snappergps", "pluto_f91w", "nrfmicro", "wulpus_hv"]
X2_BOARDS = ["ferris", "tfrpm01"]  # full AperFunction attributes (MANIFEST.json)
RULE_BOARDS = ["snappergps", "pluto_f91w", "wulpus_hv"]  # none
TAX = get_taxonomy("default")
needs_boards = pytest.mark.skipif(not GERBERS.is_dir(), reason="../shared/data/gerbers is not here")


def components(layer: np.ndarray) -> int:
    return cv2.connectedComponents(layer.astype(np.uint8), connectivity=8)[0] - 1


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return write_example_board(tmp_path / "demo")


# --- the hand-written board: every gap gerbonara leaves ---------------------------------------


def test_comment_form_and_region_attributes_are_read(demo: Path):
    g = read_gerber(demo / "demo-F_Cu.gbr")
    funcs = [(type(o).__name__, aperture_function(o)) for o in g.objects]
    assert funcs.count(("Flash", "SMDPad")) == 2  # declared with "G04 #@! TA.AperFunction,SMDPad,CuDef*"
    assert ("Region", "SMDPad") in funcs  # the function in force at G36


def test_kicad6_drill_format_tool_functions_and_g85_slot(demo: Path):
    pth = read_drill(demo / "demo-PTH.drl")
    assert pth.plated is True and pth.functions == {1: "ViaDrill", 2: "ComponentDrill"}
    xy = sorted((round(float(o.converted(MM).x), 3), round(float(o.converted(MM).y), 3)) for o in pth.objects)
    assert xy == [(3.0, 8.0), (10.0, 5.0)]  # "X10000Y5000" with ;FORMAT={3:3/...}
    (slot,) = read_drill(demo / "demo-NPTH.drl").objects
    assert isinstance(slot, go.Line) and (slot.x1, slot.x2) == (12.5, 13.5)


def test_layers_are_identified_by_x2_then_by_name(demo: Path, tmp_path: Path):
    files = identify(demo)
    assert files.get("top", "copper").name == "demo-F_Cu.gbr" and files.get(None, "outline").name == "demo-Edge_Cuts.gbr"
    assert set(files.identified_by.values()) == {"X2"}
    # the same copper without its X2 header, under Protel names (EAGLE/Altium/EasyEDA style)
    plain = tmp_path / "plain"
    plain.mkdir()
    for src, name in (("F_Cu", "board.GTL"), ("B_Cu", "board.GBL"), ("Edge_Cuts", "board.gml")):
        text = (demo / f"demo-{src}.gbr").read_text()
        (plain / name).write_text("\n".join(ln for ln in text.splitlines() if "TF.FileFunction" not in ln))
    files = identify(plain)
    assert files.get("bottom", "copper").name == "board.GBL" and files.get(None, "outline").name == "board.gml"
    assert set(files.identified_by.values()) == {"name"}


def _zip(folder: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, prefix + f.name)
    return dest


def test_a_board_comes_as_a_zip_or_one_folder_down(demo: Path, tmp_path: Path):
    layers = {k: p.name for k, p in identify(demo).layers.items()}
    as_zip = identify(_zip(demo, tmp_path / "fab.zip", prefix="Gerber_Files/"))  # as fab houses get them
    assert {k: p.name for k, p in as_zip.layers.items()} == layers
    assert [p.name for p in as_zip.drills] == [p.name for p in identify(demo).drills]
    assert as_zip.get("top", "copper").read_text() == (demo / "demo-F_Cu.gbr").read_text()
    nested = tmp_path / "board"
    shutil.copytree(demo, nested / "outputs" / "gerber")
    (nested / "README.md").write_text("a board")
    assert {k: p.name for k, p in identify(nested).layers.items()} == layers
    zipped_inside = tmp_path / "board2"
    zipped_inside.mkdir()
    _zip(demo, zipped_inside / "board2-gerbers.zip")
    assert {k: p.name for k, p in identify(zipped_inside).layers.items()} == layers
    # the importer names a zipped board after the file, not "fab.zip"
    out = tmp_path / "ds"
    assert import_main(["gerber", str(tmp_path / "fab.zip"), "--out", str(out), "--renders", "1", "--size", "64",
                        "--px-per-mm", "10", "--valid-pct", "0"]) == 0
    assert {r.group for r in read_splits(out / "splits.csv")} == {"fab"}


def test_a_board_in_two_places_or_a_bad_zip_is_refused_by_name(demo: Path, tmp_path: Path):
    two = tmp_path / "two"
    shutil.copytree(demo, two / "rev_a")
    shutil.copytree(demo, two / "rev_b")
    with pytest.raises(GerberError, match=r"more than one place \(rev_a, rev_b\)") as e:
        identify(two)
    assert e.value.path == two
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(GerberError, match=r"not a folder or a \.zip"):
        identify(bad)  # zipfile does not recognise it, so it is neither
    escape = tmp_path / "escape.zip"
    with zipfile.ZipFile(escape, "w") as z:
        for f in sorted(demo.iterdir()):
            z.write(f, f.name)
        z.writestr("../outside.txt", "G04 must not land outside the folder*")
    files = identify(escape)
    assert not (Path(files.unpacked.name).parent / "outside.txt").exists()


def test_demo_board_labels(demo: Path):
    _, (top, bottom) = label_board(demo, px_per_mm=20)
    assert top.counts == {"trace": 3, "via": 1, "pad": 4} and top.by_rule == 0
    assert components(top.via | top.via_drill) == 1 and components(top.pad) == 4
    assert [(c.ref, c.kind) for c in top.components] == [("R1", "resistor")]
    lab = top.label_map(TAX)
    assert {TAX.names[i] for i in np.unique(lab) if i < len(TAX.names)} == set(TAX.names)
    # the via's drill belongs to the via; the through-hole pad's drill and the slot are holes
    assert components(lab == TAX.id_of("hole")) == 2
    # 15 x 10 mm inside the outline, 1 mm margin outside it is ignored
    inside = (lab != TAX.ignore_index).sum() / 400
    assert 150 * 0.97 < inside < 150 * 1.03
    # the bottom is seen from below: mirrored left-right
    cols_top, cols_bottom = np.nonzero(top.via.any(0))[0], np.nonzero(bottom.via.any(0))[0]
    assert abs((cols_top.mean() + cols_bottom.mean()) - (top.board.shape[1] - 1)) < 2


@pytest.mark.parametrize("angle", [0, 10, 26, 45, 70, 90, 135])
def test_a_stroke_has_the_area_of_its_geometry(angle: float):
    """A 0.2 mm trace at 20 px/mm (4 px) covers its geometric area, whatever its direction."""
    canvas = Canvas(0, 0, 30, 30, 20)
    layer = canvas.blank()
    x2, y2 = 15 + 12 * math.cos(math.radians(angle)), 15 + 12 * math.sin(math.radians(angle))
    canvas.draw_primitive(layer, gp.Line(15.013, 15.007, x2, y2, width=0.2))
    expected = (12 * 0.2 + math.pi * 0.2**2 / 4) * 400
    assert abs(layer.sum() - expected) / expected < 0.04


def _render_crops(top, look: str, n: int = 40):
    for seed in range(n):
        image, mask = render_crop(top, TAX, np.random.default_rng(seed), size=160, px_per_mm=(16, 20), look=look)
        assert image.shape == (160, 160, 3) and mask.shape == (160, 160)
        yield image, mask


@pytest.mark.parametrize("look", ["classic", "photo"])
def test_renders_are_aligned_with_their_masks(demo: Path, look: str):
    """The image changes where the mask changes class: the mean gradient on the mask's class boundaries beats
    that of the same mask moved by 3 px, in most crops (judged over 40, so one draw of the appearance model
    cannot decide it). Holes stand out from the board: dark in the classic look; in the photo look they show
    the surface under the board, so they differ from it in colour.
    """
    _, (top, _) = label_board(demo, px_per_mm=20)
    hole_id, ignore = TAX.id_of("hole"), TAX.ignore_index

    def edge_strength(grad: np.ndarray, mask: np.ndarray, dy: int, dx: int) -> float:
        m = np.roll(mask, (dy, dx), axis=(0, 1))
        known = (m != ignore) & (np.roll(m, 1, 0) != ignore) & (np.roll(m, 1, 1) != ignore)
        edge = ((m != np.roll(m, 1, 0)) | (m != np.roll(m, 1, 1))) & known
        return float(grad[edge].mean())

    wins, stand_out = [], []
    for image, mask in _render_crops(top, look):
        grey = image.astype(np.float32).mean(axis=2)
        grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
        shifted = max(edge_strength(grad, mask, dy, dx) for dy, dx in [(3, 0), (-3, 0), (0, 3), (0, -3)])
        wins.append(edge_strength(grad, mask, 0, 0) > shifted)
        hole = cv2.erode((mask == hole_id).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        if hole.sum() > 30:
            rgb, board = image.astype(float), (mask != ignore) & (mask != hole_id)
            diff = rgb[board].mean(0) - rgb[hole].mean(0)
            stand_out.append(diff.mean() if look == "classic" else np.linalg.norm(diff))
    assert np.mean(wins) >= 0.8, wins
    assert len(stand_out) >= 10, "too few render crops of the demo board show a hole"
    assert np.median(stand_out) > 20, stand_out


def test_cli_imports_and_groups_by_board(demo: Path, tmp_path: Path):
    second = write_example_board(tmp_path / "other")
    out = tmp_path / "ds"
    assert import_main(["gerber", str(demo), str(second), "--out", str(out), "--renders", "2", "--size", "96",
                        "--px-per-mm", "10", "--valid-pct", "0.5"]) == 0
    assert validate_dataset(out) == []
    rows = read_splits(out / "splits.csv")
    assert {r.group for r in rows} == {"demo", "other"} and len(rows) == 12
    assert all(len({r.split for r in rows if r.group == g}) == 1 for g in ("demo", "other"))
    boards = json.loads((out / "gerber_boards.json").read_text())
    assert boards["demo"]["labelled_by"] == "attributes" and boards["demo"]["sides"]["top"]["vias"] == 1
    mask = read_mask(DatasetLayout(out).mask_path("demo_top_full"))
    assert TAX.id_of("via") in mask and TAX.ignore_index in mask
    assert import_main(["gerber", str(demo), "--out", str(out)]) == 1  # never over a finished dataset


def test_bad_boards_are_named_and_the_rest_still_import(demo: Path, tmp_path: Path, capsys):
    empty = tmp_path / "notes"
    empty.mkdir()
    (empty / "README.txt").write_text("no fabrication files here")
    corrupt = write_example_board(tmp_path / "corrupt")
    (corrupt / "corrupt-F_Cu.gbr").write_text("%TF.FileFunction,Copper,L1,Top*%\n%FSLAX46Y46*%\n%MOMM*%\nD10*\nX1Y1D03*\n")
    macro = write_example_board(tmp_path / "macro")
    text = (macro / "macro-B_Cu.gbr").read_text().replace("M02*", "%ADD40NOSUCHMACRO*%\nD40*\nX1Y1D03*\nM02*")
    (macro / "macro-B_Cu.gbr").write_text(text)
    out = tmp_path / "ds"
    assert import_main(["gerber", str(empty), str(corrupt), str(macro), str(demo), "--out", str(out), "--renders", "1",
                        "--size", "64", "--px-per-mm", "10", "--valid-pct", "0"]) == 0
    err = capsys.readouterr().err
    assert f"{empty}: no recognisable top or bottom copper layer" in err
    assert str(corrupt / "corrupt-F_Cu.gbr") in err and str(macro / "macro-B_Cu.gbr") in err
    assert "aperture" in err.split(str(macro / "macro-B_Cu.gbr"))[1].splitlines()[0].lower()
    assert {r.group for r in read_splits(out / "splits.csv")} == {"demo"}
    assert import_main(["gerber", str(empty), "--out", str(tmp_path / "none")]) == 1
    assert "no recognisable top or bottom copper layer" in capsys.readouterr().err  # why nothing was imported
    with pytest.raises(GerberError, match="no recognisable"):
        identify(empty)


# --- the six real boards ----------------------------------------------------------------------


def _file_counts(path: Path) -> tuple[int, int]:
    """ViaPad flashes and pad objects (flashes and regions) as the file declares them."""
    objects = read_gerber(path).objects
    vias = sum(isinstance(o, go.Flash) and aperture_function(o) == "ViaPad" for o in objects)
    pads = sum(isinstance(o, (go.Flash, go.Region)) and aperture_function(o) in PAD_FUNCTIONS for o in objects)
    return vias, pads


@needs_boards
@pytest.mark.parametrize("board", X2_BOARDS)
def test_x2_boards_via_and_pad_counts_match_the_files(board: str):
    files, sides = label_board(GERBERS / board, px_per_mm=20)
    assert {s.side for s in sides} == {"top", "bottom"}
    for side in sides:
        vias, pads = _file_counts(files.get(side.side, "copper"))
        assert components(side.via | side.via_drill) == vias, side.side
        # pads drawn as a flash plus a region, or touching, merge into one blob
        assert abs(components(side.pad) - pads) <= max(3, 0.05 * pads), (side.side, components(side.pad), pads)
        assert side.by_attribute > 10 * side.by_rule


@needs_boards
@pytest.mark.parametrize("board", X2_BOARDS)
def test_x2_boards_trace_area_matches_the_drawn_lines(board: str):
    files, sides = label_board(GERBERS / board, px_per_mm=20)
    side = sides[0]
    canvas = side.canvas
    lines = [o for o in read_gerber(files.get("top", "copper")).objects
             if isinstance(o, go.Line) and aperture_function(o) == "Conductor"]
    layer = canvas.blank()
    canvas.draw(layer, lines, 1)
    segs = [o.converted(MM) for o in lines]
    lower = sum(math.hypot(s.x2 - s.x1, s.y2 - s.y1) * s.aperture.equivalent_width(MM) for s in segs) * 400
    upper = lower + sum(math.pi * s.aperture.equivalent_width(MM) ** 2 / 4 for s in segs) * 400
    assert 0.95 * lower < layer.sum() < 1.03 * upper, (layer.sum(), lower, upper)
    assert side.trace[layer > 0].mean() > 0.98  # the side's trace layer holds those lines


@needs_boards
@pytest.mark.parametrize("board", [*RULE_BOARDS, "nrfmicro"])
def test_boards_without_attributes_are_labelled_by_rule(board: str):
    _, sides = label_board(GERBERS / board, px_per_mm=10)
    for side in sides:
        assert side.by_rule > side.by_attribute
        present = set(np.unique(side.label_map(TAX)))
        assert {TAX.id_of(c) for c in ("trace", "via", "pad")} <= present, (board, side.side)


@needs_boards
def test_all_six_boards_import(tmp_path: Path):
    out = tmp_path / "ds"
    assert import_main(["gerber", *(str(GERBERS / b) for b in BOARDS), "--out", str(out), "--renders", "1",
                        "--size", "128", "--px-per-mm", "10"]) == 0
    assert validate_dataset(out) == []
    boards = json.loads((out / "gerber_boards.json").read_text())
    assert sorted(boards) == sorted(BOARDS)
    assert {b: boards[b]["labelled_by"] for b in RULE_BOARDS} == dict.fromkeys(RULE_BOARDS, "rules")
    assert boards["tfrpm01"]["labelled_by"] in ("attributes", "mixed") and boards["nrfmicro"]["labelled_by"] == "mixed"
    rows = read_splits(out / "splits.csv")
    assert {r.group for r in rows} == set(BOARDS) and sum(r.split == "val" for r in rows) > 0


# --- the board-photos boards: file quirks named in their README --------------------------------

PHOTO_BOARDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "board-photos"
needs_photo_boards = pytest.mark.skipif(not PHOTO_BOARDS.is_dir(), reason="../shared/data/board-photos is not here")


def test_fritzing_rectangles_with_a_hole_become_solid(tmp_path: Path):
    f = tmp_path / "silk.gto"
    f.write_text("%FSLAX24Y24*%\n%MOIN*%\n%ADD10R,0.100000X0.050000X0.020000X0.010000*%\nD10*\nX010000Y010000D03*\nM02*\n")
    canvas = Canvas(x0=20, y0=20, width_mm=10, height_mm=10, px_per_mm=20)  # the flash is at 25.4 mm
    layer = canvas.blank()
    canvas.draw(layer, read_gerber(f).objects)
    assert layer.sum() == pytest.approx(2.54 * 1.27 * 400, rel=0.05)  # the whole 0.1 x 0.05 inch, no hole


def test_eagle_drill_file_takes_its_format_from_the_dri_file(tmp_path: Path):
    (tmp_path / "b.XLN").write_text("%\nM48\nM72\nT01C0.0138\n%\nT01\nX3850Y2350\nM30\n")
    (tmp_path / "b.dri").write_text("Device            : Excellon drill station, coordinate format 2.4 inch\n")
    (obj,) = read_drill(tmp_path / "b.XLN").objects
    c = obj.converted(MM)
    assert (round(float(c.x), 3), round(float(c.y), 3)) == (9.779, 5.969)  # 0.3850, 0.2350 inch
    (tmp_path / "b.dri").write_text("Device : Excellon drill station, coordinate format 3.3 inch\n")
    (obj,) = read_drill(tmp_path / "b.XLN").objects
    assert round(float(obj.converted(MM).x), 2) == 97.79  # the format really comes from the .dri


def test_fritzing_drill_tools_below_100_are_not_plated(tmp_path: Path):
    (tmp_path / "d.txt").write_text("; NON-PLATED HOLES START AT T1\n; THROUGH (PLATED) HOLES START AT T100\nM48\nINCH\n"
                                     "T1C0.125\nT100C0.038\n%\nT1\nX010000Y010000\nT100\nX020000Y010000\nM30\n")
    d = read_drill(tmp_path / "d.txt")
    assert d.plated_tools == {1: False, 100: True}


@needs_photo_boards
def test_relay_board_parses_and_its_holes_are_plated():
    files, sides = label_board(PHOTO_BOARDS / "relay_board" / "gerber", 5)
    assert {s.side for s in sides} == {"top", "bottom"}
    assert sides[0].silk.sum() > 0 and sides[0].counts["pad"] > 100  # the silkscreen with "R,wXhXaXb" apertures
    (drill,) = (read_drill(p) for p in files.drills)
    assert drill.plated_tools and all(drill.plated_tools.values())  # every tool is T100 or above
