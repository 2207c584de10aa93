"""pcbseg-import photos: registration round trips on real layouts, refusals, label transfer, the importer's
outputs and bad input, and the real photographs in ../shared/data/board-photos (skipped when absent)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from pcbseg.cli.import_ import main as import_main
from pcbseg.data.gerber.example import write_example_board
from pcbseg.data.gerber.labels import label_board
from pcbseg.data.gerber.render import render_full
from pcbseg.data.layout import DatasetLayout, read_mask
from pcbseg.data.photo.fine import PhotoPyramid, Radial, Warp, refine
from pcbseg.data.photo.frame import SideFrame, apply_h, label_grid
from pcbseg.data.photo.importer import import_photos
from pcbseg.data.photo.register import Limits, register_photo
from pcbseg.data.photo.transfer import label_map, transfer_labels
from pcbseg.data.splits import read_splits
from pcbseg.data.validate import validate_dataset
from pcbseg.taxonomy import get_taxonomy

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GERBERS = SHARED / "gerbers"
PHOTOS = SHARED / "board-photos"
TAX = get_taxonomy("default")
needs_gerbers = pytest.mark.skipif(not GERBERS.is_dir(), reason="../shared/data/gerbers is not here")
needs_photos = pytest.mark.skipif(not PHOTOS.is_dir(), reason="../shared/data/board-photos is not here")
BACKGROUND = (185, 175, 150)


def sides_of(board: Path, ppm: float):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return label_board(board, ppm)[1]


def synthetic_photo(side, rng: np.random.Generator, size=(1200, 900), fill=(0.45, 0.65), k: float = 0.01,
                    angle: float | None = None):
    """A photo-like render of ``side`` turned, scaled, put in perspective, bent by a radial lens
    distortion ``k``, unevenly lit, blurred and noisy; and the true frame mm -> photo px mapping."""
    img = render_full(side, TAX, rng, max_side=4000)[0]
    w, h = size
    angle = rng.uniform(-180, 180) if angle is None else angle
    scale = rng.uniform(*fill) * min(w, h) / max(img.shape[:2])
    a = np.vstack([cv2.getRotationMatrix2D((img.shape[1] / 2, img.shape[0] / 2), angle, scale), [0, 0, 1]])
    a[:2, 2] += np.array([w / 2, h / 2]) - np.array([img.shape[1] / 2, img.shape[0] / 2])
    persp = np.eye(3)
    persp[2, :2] = rng.uniform(-1, 1, 2) * 1e-4
    hw = a @ persp
    hw /= hw[2, 2]
    flat = cv2.warpPerspective(img, hw, size, flags=cv2.INTER_LINEAR, borderValue=BACKGROUND)
    # the photo at p shows the undistorted picture at c + (p - c)(1 + k r^2 / R^2)
    centre, r2 = np.array([w / 2, h / 2]), (w / 2) ** 2 + (h / 2) ** 2
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    f = 1 + k * ((gx - centre[0]) ** 2 + (gy - centre[1]) ** 2) / r2
    photo = cv2.remap(flat, (centre[0] + (gx - centre[0]) * f).astype(np.float32),
                      (centre[1] + (gy - centre[1]) * f).astype(np.float32), cv2.INTER_LINEAR, borderValue=BACKGROUND)
    light = (0.75 + 0.5 * gx / w)[..., None]
    photo = cv2.GaussianBlur(photo.astype(np.float32) * light, (0, 0), 0.8) + rng.normal(0, 3, photo.shape)
    frame_to_flat = hw @ np.linalg.inv(label_grid(side, (side.board.shape[1] / img.shape[1] / side.canvas.px_per_mm,
                                                         side.board.shape[0] / img.shape[0] / side.canvas.px_per_mm)))

    def truth(q: np.ndarray) -> np.ndarray:
        u = apply_h(frame_to_flat, q)
        p = u.copy()
        for _ in range(30):  # invert the distortion: find p with c + (p - c) f(p) = u
            p = centre + (u - centre) / (1 + k * ((p - centre) ** 2).sum(axis=1) / r2)[:, None]
        return p

    return np.clip(photo, 0, 255).astype(np.uint8), truth


# --- round trips on the real layouts in ../shared/data/gerbers ---------------------------------------------


@needs_gerbers
# One board per CAD tool and version of ../shared/data/gerbers. ferris (KiCad 5.1, as nrfmicro) is left out: at
# 210 mm its 10 px/mm photo is 3800 px wide and its round trip alone took 133 s of a CI run (the others 12 to 28 s);
# test_gerber still imports and checks it.
@pytest.mark.parametrize("board", ["tfrpm01", "nrfmicro", "pluto_f91w", "snappergps", "wulpus_hv"])
def test_round_trip_recovers_the_board_corners_within_a_pixel(board: str):
    sides = sides_of(GERBERS / board, 16)
    render_side = sides_of(GERBERS / board, 32)[0]  # rendered finer than the photo, as a camera sees a board
    width = max(1200, round(1.8 * 10 * max(render_side.canvas.width_mm, render_side.canvas.height_mm)))  # ~10 px/mm
    photo, truth = synthetic_photo(render_side, np.random.default_rng(0), size=(width, width * 3 // 4))
    frame = SideFrame(sides[0])
    (reg,) = register_photo(photo, [frame], Limits(), other_sides=[SideFrame(s) for s in sides])
    assert reg.ok, reg.reasons
    corners = frame.board_corners_mm()
    err = np.hypot(*(reg.fit.warp.to_photo(corners) - truth(corners)).T)
    assert err.max() < 1.0, (err, reg.fit.log)
    assert reg.fit.residual_mm < 0.1


@needs_gerbers
def test_labels_transferred_through_a_round_trip_match_the_render():
    board = GERBERS / "tfrpm01"
    side = sides_of(board, 32)[0]
    frame = SideFrame(sides_of(board, 16)[0])
    photo, truth = synthetic_photo(side, np.random.default_rng(3), k=0.0)
    (reg,) = register_photo(photo, [frame], Limits())
    mask, _ = transfer_labels(PhotoPyramid(photo), frame, side, reg.fit.warp, TAX, (0, 0, photo.shape[1], photo.shape[0]),
                              boundary_px=0, occlusion=False)
    # the labels the render was painted from, warped by the true mapping
    h, w = side.board.shape
    pts = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)  # k=0: the truth is a homography
    to_photo = cv2.getPerspectiveTransform(pts.astype(np.float32), truth(apply_h(label_grid(side), pts)).astype(np.float32))
    expected = cv2.warpPerspective(label_map(side, TAX, "ignore", set()), to_photo, photo.shape[1::-1], flags=cv2.INTER_NEAREST,
                                   borderValue=255)
    k = np.ones((3, 3), np.uint8)
    inner = cv2.dilate(expected, k) == cv2.erode(expected, k)  # a pixel from any class boundary (at 10 px/mm: most)
    both = (mask != 255) & (expected != 255) & inner
    assert both.sum() > 0.03 * mask.size
    assert (mask[both] == expected[both]).mean() > 0.99


# --- refusals ---------------------------------------------------------------------------------------------


@needs_gerbers
def test_a_photo_of_another_board_is_refused():
    photo, _ = synthetic_photo(sides_of(GERBERS / "tfrpm01", 16)[0], np.random.default_rng(1), k=0.0)
    other = [SideFrame(s) for s in sides_of(GERBERS / "nrfmicro", 16)]
    regs = register_photo(photo, other, Limits(), side_given=False)
    assert not regs or not regs[0].ok


@needs_gerbers
def test_the_wrong_side_is_named():
    sides = sides_of(GERBERS / "tfrpm01", 16)
    photo, _ = synthetic_photo(sides[0], np.random.default_rng(2), k=0.0)  # the top side
    bottom = SideFrame(sides[1])
    regs = register_photo(photo, [bottom], Limits(), other_sides=[SideFrame(sides[0]), bottom])
    assert regs and not regs[0].ok
    assert any("top side" in r for r in regs[0].reasons), regs[0].reasons


def test_a_lens_distortion_round_trips():
    lens = Radial(np.array([600.0, 450.0]), 750.0, np.array([0.03, -0.01]))
    u = np.random.default_rng(0).uniform(0, 1200, (50, 2))
    assert np.abs(lens.undistort(lens.distort(u)) - u).max() < 1e-6
    h = np.array([[20.0, 1, 100], [-1, 20, 80], [1e-5, 0, 1]])
    q = np.random.default_rng(1).uniform(0, 40, (200, 2))
    fitted, fh = Radial.fit(q, lens.distort(apply_h(h, q)), lens.centre, lens.radius)
    warp = Warp(fh, fitted)
    assert np.abs(warp.to_photo(q) - lens.distort(apply_h(h, q))).max() < 0.01
    assert np.abs(warp.to_frame(warp.to_photo(q)) - q).max() < 1e-4


# --- the importer on the hand-written example board (no shared data needed) -----------------------------


def _board_folder(root: Path, photos: int = 2, side_json: str | None = "top") -> Path:
    board = root / "demo"
    write_example_board(board / "gerber")
    top = sides_of(board / "gerber", 32)[0]
    (board / "photos").mkdir()
    for k in range(photos):
        photo, _ = synthetic_photo(top, np.random.default_rng(10 + k), size=(640, 480), fill=(0.75, 0.8), k=0.0,
                                   angle=25.0 * k - 10)
        cv2.imwrite(str(board / "photos" / f"shot{k}.png"), photo[..., ::-1])
    if side_json:
        meta = {"photos": [{"file": f"shot{k}.png", "side": side_json} for k in range(photos)]}
        (board / "board.json").write_text(json.dumps(meta))
    return board


@pytest.fixture(scope="module")
def demo_board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _board_folder(tmp_path_factory.mktemp("photos"))


LOOSE = Limits(min_blocks=10, min_coverage=0.1)


def test_import_writes_images_masks_overlays_and_the_registration(demo_board: Path, tmp_path: Path):
    res = import_photos([demo_board], tmp_path / "ds", limits=LOOSE, valid_pct=0)
    assert res.imported == ["demo_shot0", "demo_shot1"] and not res.skipped
    assert {r.group for r in read_splits(tmp_path / "ds" / "splits.csv")} == {"demo"}
    assert not [p for p in validate_dataset(tmp_path / "ds") if p.level == "error"]
    report = (tmp_path / "ds" / "import_report.md").read_text()
    assert "| demo_shot0 | top |" in report and "overlays/demo_shot0.jpg" in report
    assert (tmp_path / "ds" / "overlays" / "demo_shot0.jpg").is_file()
    recs = json.loads((tmp_path / "ds" / "registration.json").read_text())
    assert all(r["written"] and r["residual_mm"] < 0.1 for r in recs)
    mask = read_mask(DatasetLayout(tmp_path / "ds").mask_path("demo_shot0"))
    assert {TAX.id_of("trace"), TAX.id_of("pad"), TAX.id_of("via"), 255} <= set(np.unique(mask).tolist())


def test_outside_background_and_the_boundary_band(demo_board: Path, tmp_path: Path):
    shares = {}
    for band in (0, 4):
        out = tmp_path / f"b{band}"
        import_photos([demo_board], out, limits=LOOSE, outside="background", boundary_ignore=band, occlusion=False,
                      crop=False, valid_pct=0)
        mask = read_mask(DatasetLayout(out).mask_path("demo_shot0"))
        shares[band] = float((mask == 255).mean())
    assert shares[0] == 0.0  # nothing ignored: outside is background, no band, no occlusion test
    assert shares[4] > 0.02  # the band covers every class boundary


def test_ignore_regions_from_board_json_are_ignored(demo_board: Path, tmp_path: Path):
    board = Path(shutil.copytree(demo_board, tmp_path / "demo"))
    meta = json.loads((board / "board.json").read_text())
    meta["ignore_regions"] = [{"x": [0, 50], "y": [0, 50]}]  # the whole example board (15 x 10 mm at the origin)
    (board / "board.json").write_text(json.dumps(meta))
    import_photos([board], tmp_path / "ds", limits=LOOSE, occlusion=False, valid_pct=0)
    mask = read_mask(DatasetLayout(tmp_path / "ds").mask_path("demo_shot0"))
    assert set(np.unique(mask).tolist()) == {255}


def test_points_start_the_search_and_fixed_points_are_verified(demo_board: Path, tmp_path: Path):
    photo = cv2.imread(str(demo_board / "photos" / "shot0.png"))[..., ::-1]
    frame = SideFrame(sides_of(demo_board / "gerber", 16)[0])
    (good,) = register_photo(photo, [frame], LOOSE)
    corners = frame.board_corners_mm()
    px = apply_h(good.fit.h, corners)
    gerber = [(frame.labels.canvas.x0 + u, frame.labels.canvas.y0 + frame.labels.canvas.height_mm - v) for u, v in corners]
    rows = ["photo,x_px,y_px,x_mm,y_mm"]
    rows += [f"shot0.png,{x + 6:.2f},{y - 5:.2f},{gx},{gy}" for (x, y), (gx, gy) in zip(px, gerber, strict=True)]  # ~0.2 mm off
    (tmp_path / "pts.csv").write_text("\n".join(rows) + "\n")
    res = import_photos([demo_board], tmp_path / "ds", limits=LOOSE, points=tmp_path / "pts.csv", valid_pct=0)
    rec = {r["photo"]: r for r in json.loads((tmp_path / "ds" / "registration.json").read_text())}["shot0.png"]
    assert "demo_shot0" in res.imported and rec["source"] == "points" and rec["residual_mm"] < 0.1
    res = import_photos([demo_board], tmp_path / "fixed", limits=LOOSE, points=tmp_path / "pts.csv", points_fixed=True,
                        valid_pct=0)
    rec = {r["photo"]: r for r in json.loads((tmp_path / "fixed" / "registration.json").read_text())}["shot0.png"]
    assert rec["source"] == "points (fixed)" and rec["residual_mm"] > 0.1  # the offset is measured, not hidden
    (tmp_path / "few.csv").write_text("photo,x_px,y_px,x_mm,y_mm\nshot0.png,1,2,3,4\n")
    with pytest.raises(ValueError, match="at least 4"):
        import_photos([demo_board], tmp_path / "few", limits=LOOSE, points=tmp_path / "few.csv")


# --- bad input -------------------------------------------------------------------------------------------


def test_an_unreadable_photo_is_skipped_and_the_others_import(demo_board: Path, tmp_path: Path):
    board = Path(shutil.copytree(demo_board, tmp_path / "demo"))
    (board / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    res = import_photos([board], tmp_path / "ds", limits=LOOSE, valid_pct=0)
    assert len(res.imported) == 2
    assert any("broken.jpg" in f and "cannot be read" in why for f, why in res.skipped)
    assert "broken.jpg" in (tmp_path / "ds" / "import_report.md").read_text()


@pytest.mark.parametrize("remove, reason", [("Edge_Cuts", "no board outline"), (".drl", "no drill file")])
def test_a_board_without_outline_or_drills_is_skipped_with_the_reason(demo_board: Path, tmp_path: Path, remove: str,
                                                                       reason: str):
    bad = Path(shutil.copytree(demo_board, tmp_path / "bad"))
    for f in (bad / "gerber").iterdir():
        if remove in f.name:
            f.unlink()
    good = Path(shutil.copytree(demo_board, tmp_path / "good"))
    res = import_photos([bad, good], tmp_path / "ds", limits=LOOSE, valid_pct=0)
    assert res.imported == ["good_shot0", "good_shot1"]
    assert any(reason in why for _, why in res.skipped)


def test_a_corrupt_gerber_file_is_named(demo_board: Path, tmp_path: Path):
    bad = Path(shutil.copytree(demo_board, tmp_path / "bad"))
    (bad / "gerber" / "demo-F_Cu.gbr").write_text("%FSLAX46Y46*%\n%MOMM*%\n%ADD10XYZ,1*%\nD10*\nX0Y0D03*\nM02*\n")
    good = Path(shutil.copytree(demo_board, tmp_path / "good"))
    res = import_photos([bad, good], tmp_path / "ds", limits=LOOSE, valid_pct=0)
    assert len(res.imported) == 2
    assert any("demo-F_Cu.gbr" in why for _, why in res.skipped)


def test_nothing_importable_is_an_error_and_nothing_is_written(demo_board: Path, tmp_path: Path, capsys):
    board = Path(shutil.copytree(demo_board, tmp_path / "demo"))
    for f in (board / "photos").iterdir():
        f.write_bytes(b"junk")
    rc = import_main(["photos", str(board), "--out", str(tmp_path / "ds")])
    assert rc == 1 and "no image could be imported" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.tmp")]


def test_a_non_empty_out_is_refused(demo_board: Path, tmp_path: Path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert import_main(["photos", str(demo_board), "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"


def test_bad_cli_values_are_errors(demo_board: Path, tmp_path: Path, capsys):
    assert import_main(["photos", str(demo_board), "--out", str(tmp_path / "a"), "--boundary-ignore", "wide"]) == 1
    assert "--boundary-ignore" in capsys.readouterr().err
    assert import_main(["photos", str(demo_board), "--out", str(tmp_path / "b"), "--ignore-region", "demo=1,2,3"]) == 1
    assert "--ignore-region" in capsys.readouterr().err


def test_refine_verifies_a_fixed_fit_without_moving_it():
    frame = SideFrame(sides_of(write_example_board(Path(__import__("tempfile").mkdtemp()) / "d"), 20)[0])
    truth = np.array([[20.0, 0, 10], [0, 20, 15], [0, 0, 1]])
    photo = cv2.warpPerspective(frame.appearance_render(20), truth @ frame.grid(20), (380, 280))
    off = truth @ np.array([[1, 0, 0.3], [0, 1, 0], [0, 0, 1]])
    fit = refine(PhotoPyramid(photo), frame, off, fixed=True)
    assert np.array_equal(fit.h, off) and 0.2 < fit.residual_mm < 0.4  # the 0.3 mm offset, measured


# --- the real photographs ------------------------------------------------------------------------------------


@needs_photos
def test_real_photos_of_nes2msx_import_with_small_residuals(tmp_path: Path):
    rc = import_main(["photos", str(PHOTOS / "nes2msx"), "--out", str(tmp_path / "ds"), "--px-per-mm", "15"])
    assert rc == 0
    recs = {r["photo"]: r for r in json.loads((tmp_path / "ds" / "registration.json").read_text())}
    assert set(recs) == {"pcb_top.jpg", "pcb_bottom.jpg", "pcb_ensambled.jpg"}
    assert all(r["written"] for r in recs.values())
    assert recs["pcb_top.jpg"]["residual_mm"] <= 0.15 and recs["pcb_bottom.jpg"]["residual_mm"] <= 0.15  # bare, top-down
    assert recs["pcb_ensambled.jpg"]["residual_mm"] <= 0.3
    assert recs["pcb_bottom.jpg"]["side"] == "bottom"
    # the labels sit on what the photo shows: bare pads are brighter than the plain blue mask around them
    layout = DatasetLayout(tmp_path / "ds")
    grey = cv2.imread(str(layout.images / "nes2msx_pcb_top.jpg"), cv2.IMREAD_GRAYSCALE)
    mask = read_mask(layout.mask_path("nes2msx_pcb_top"))
    assert grey[mask == TAX.id_of("pad")].mean() > grey[mask == TAX.id_of("background")].mean() + 25
    assert not [p for p in validate_dataset(tmp_path / "ds") if p.level == "error"]


@needs_photos
def test_a_real_photo_of_another_board_is_refused():
    photo = cv2.imread(str(PHOTOS / "nes2msx" / "photos" / "pcb_top.jpg"))[..., ::-1]
    frames = [SideFrame(s) for s in sides_of(PHOTOS / "coco2_sram" / "gerber", 16)]
    regs = register_photo(photo, frames, Limits(), side_given=False)
    assert not regs or not regs[0].ok


def test_exif_orientation_is_applied_before_registration(demo_board: Path, tmp_path: Path):
    from PIL import Image

    board = Path(shutil.copytree(demo_board, tmp_path / "demo"))
    upright = Image.open(board / "photos" / "shot0.png").convert("RGB")
    for f in (board / "photos").iterdir():
        f.unlink()
    (board / "board.json").unlink()
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # stored turned; EXIF 6 says "turn 90° clockwise to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(board / "photos" / "turned.jpg", quality=95, exif=exif)
    res = import_photos([board], tmp_path / "ds", limits=LOOSE, crop=False, valid_pct=0)
    assert res.imported == ["demo_turned"]
    written = cv2.imread(str(tmp_path / "ds" / "images" / "demo_turned.jpg"))
    assert written.shape[:2] == (upright.height, upright.width)  # as viewed, not as stored
