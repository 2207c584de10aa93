import hashlib
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pcbseg.data.layout import read_mask
from pcbseg.data.synth import render_board, write_dataset
from pcbseg.data.validate import validate_dataset
from pcbseg.taxonomy import get_taxonomy, load_classes


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(arr.tobytes()).hexdigest()


def test_same_seed_gives_identical_board_and_other_seeds_differ():
    a_img, a_mask = render_board(11, size=128)
    b_img, b_mask = render_board(11, size=128)
    c_img, _ = render_board(12, size=128)
    assert _digest(a_img) == _digest(b_img) and _digest(a_mask) == _digest(b_mask)
    assert _digest(a_img) != _digest(c_img)


@pytest.mark.parametrize("taxonomy", ["default", "fine"])
def test_every_class_appears_in_a_generated_set(taxonomy: str):
    tax = get_taxonomy(taxonomy)
    seen: set[int] = set()
    for seed in range(30):
        seen |= set(np.unique(render_board(seed, size=192, taxonomy=taxonomy)[1]).tolist())
        if set(range(tax.num_classes)) <= seen:
            break
    missing = [tax.names[i] for i in range(tax.num_classes) if i not in seen]
    assert not missing, f"classes never rendered: {missing}"
    assert seen <= set(range(tax.num_classes)) | {tax.ignore_index}


def test_labels_are_mostly_valid_not_ignore():
    _, mask = render_board(5, size=160)
    assert (mask == 255).mean() < 0.02
    assert 0.2 < (mask == 0).mean() < 0.95  # board shows, but is not blank


def test_photo_look_warps_image_and_labels_alike():
    """Paint each class its own colour, warp with the photo look's oblique views and lens, decode the colours back."""
    from pcbseg.data.synth.appearance import geometry
    from pcbseg.data.synth.scene import lens

    rng = np.random.default_rng(0)
    lab = np.zeros((200, 200), np.uint8)
    for k in range(60):  # blocks of classes 0..6, at least 6 px wide
        y, x, h, w = rng.integers(0, 190, 4)
        lab[y:y + 6 + h // 4, x:x + 6 + w // 4] = k % 7
    lut = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], np.float32)
    warps = [geometry(np.random.default_rng(seed), lut[lab], lab, 160, 255, "photo") for seed in range(12)]
    warps.append(lens(np.random.default_rng(1), lut[lab][20:180, 20:180], lab[20:180, 20:180], 255))
    for img, out in warps:
        decoded = np.abs(img[..., None, :] - lut[None, None]).sum(-1).argmin(-1)
        seen = out != 255
        assert seen.mean() > 0.8 and (decoded[seen] == out[seen]).mean() > 0.97
    assert any(not np.array_equal(a[1], b[1]) for a, b in itertools.pairwise(warps))


def test_photo_look_changes_colours_only_where_it_does_not_warp(tmp_path: Path):
    from pcbseg.data.gerber.example import write_example_board
    from pcbseg.data.gerber.labels import label_board
    from pcbseg.data.gerber.render import render_full

    _, sides = label_board(write_example_board(tmp_path / "demo"), px_per_mm=20)
    tax = get_taxonomy("default")
    img_a, lab_a = render_full(sides[0], tax, np.random.default_rng(3))
    img_b, lab_b = render_full(sides[0], tax, np.random.default_rng(3), look="photo")
    assert np.array_equal(lab_a, lab_b) and not np.array_equal(img_a, img_b)
    root = write_dataset(tmp_path / "photo", num_boards=3, size=64, workers=1, look="photo")
    assert '"look": "photo"' in (root / "synth.json").read_text()
    with pytest.raises(ValueError, match="look"):
        render_board(0, size=64, look="glossy")


def test_photo_look_paints_copper_under_mask_as_a_subtle_brightening():
    """Copper under the mask, measured on the registered shared photos, is the mask colour 0.9-1.5x as bright
    with nearly its hue; the classic blend is far warmer (red x3 on green). The photo look must stay near the photos."""
    from pcbseg.data.synth.appearance import BoardLayers, paint

    layers = BoardLayers((96, 192))
    layers.trace[:, 96:] = 1  # left half bare laminate under mask, right half a pour
    ratios = {"classic": [], "photo": []}
    for look in ratios:
        for seed in range(40):
            img = paint(layers, 10.0, np.random.default_rng(seed), look=look)
            bare, pour = img[20:76, 20:76].reshape(-1, 3).mean(0), img[20:76, 116:172].reshape(-1, 3).mean(0)
            ratios[look].append(pour / np.maximum(bare, 0.02))
    photo, classic = np.median(ratios["photo"], axis=0), np.median(ratios["classic"], axis=0)
    assert (photo > 0.9).all() and (photo < 1.6).all(), photo
    assert photo.max() / photo.min() < 1.25  # a brightening, not a change of hue
    assert classic.max() > 1.8  # the classic blend really is the warm one this guards against


def test_photo_look_shows_the_surface_through_holes_and_lights_thin_traces():
    """Measured on the registered photos: holes show what the board lies on (never near black), and thin traces
    under the mask are a warm lift over the bare mask while pour interiors are not."""
    from pcbseg.data.synth.appearance import BoardLayers, paint

    layers = BoardLayers((96, 192))
    layers.hole[40:56, 20:36] = 1
    layers.trace[20:76, 96:] = 1  # a pour
    layers.trace[10:13, 40:90] = 1  # a 0.3 mm trace at 10 px/mm
    paper = np.full((96, 192, 3), 0.9, np.float32)
    hole, thin_lift, pour_lift = {}, [], []
    for look in ("classic", "photo"):
        hole[look] = np.median([paint(layers, 10.0, np.random.default_rng(s), look=look, behind=paper)[44:52, 24:32].mean()
                                for s in range(20)])
    for seed in range(40):
        img = paint(layers, 10.0, np.random.default_rng(seed), look="photo").mean(axis=2)
        bare = img[14:18, 40:90].mean()
        thin_lift.append(img[10:13, 40:90].mean() - bare)
        pour_lift.append(img[40:56, 130:160].mean() / max(img[60:90, 40:90].mean(), 0.02))
    assert hole["classic"] < 0.15 and hole["photo"] > 0.3, hole
    assert np.median(thin_lift) > 0.05, np.median(thin_lift)
    assert np.median(pour_lift) < 1.6  # the pour itself stays a subtle brightening


def test_photo_look_draws_more_and_whole_board_pours():
    from pcbseg.data.synth.board import Board

    board = Board(np.random.default_rng(0), 120, 10.0, get_taxonomy("default"))
    board.layers.pad[50:60, 50:60] = 1
    board.pour(whole=True)
    trace, pad = board.layers.trace.astype(bool), board.layers.pad.astype(bool)
    assert trace.mean() > 0.8 and not (trace & pad).any()
    assert not trace[48:62, 48:62].any()  # the clearance around the pad is kept
    share = {look: np.mean([(render_board(s, size=96, look=look)[1] == 1).mean() for s in range(24)])
             for look in ("classic", "photo")}
    assert share["photo"] > share["classic"] + 0.05, share


def test_written_dataset_is_byte_identical_for_the_same_seed(tmp_path: Path):
    a = write_dataset(tmp_path / "a", num_boards=5, size=64, seed=3, workers=2)
    b = write_dataset(tmp_path / "b", num_boards=5, size=64, seed=3, workers=1)
    for sub in ("images", "masks"):
        names = sorted(p.name for p in (a / sub).iterdir())
        assert len(names) == 5 and names == sorted(p.name for p in (b / sub).iterdir())
        for name in names:
            assert (a / sub / name).read_bytes() == (b / sub / name).read_bytes(), f"{sub}/{name} differs"
    assert (a / "splits.csv").read_bytes() == (b / "splits.csv").read_bytes()
    assert validate_dataset(a) == []


def test_fine_dataset_writes_its_taxonomy(tmp_path: Path):
    root = write_dataset(tmp_path / "fine", num_boards=4, size=96, taxonomy="fine", workers=1)
    tax = load_classes(root / "classes.yaml")
    assert tax == get_taxonomy("fine")
    assert max(int(read_mask(p)[read_mask(p) != 255].max()) for p in (root / "masks").iterdir()) < tax.num_classes


def test_write_dataset_refuses_to_overwrite(tmp_path: Path):
    root = write_dataset(tmp_path / "d", num_boards=2, size=64, workers=1)
    before = (root / "images" / "board_00000.png").read_bytes()
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset(root, num_boards=2, size=64, seed=99, workers=1)
    assert (root / "images" / "board_00000.png").read_bytes() == before
    write_dataset(root, num_boards=2, size=64, seed=99, workers=1, overwrite=True)
    assert (root / "images" / "board_00000.png").read_bytes() != before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_cli_writes_dataset_and_refuses_a_second_time(tmp_path: Path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "pcbseg.cli.synth", f"out={out}", "num_boards=3", "size=64", "seed=1", "taxonomy=fine"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"board_0000{i}.png" for i in range(3)]
    assert load_classes(out / "classes.yaml").name == "fine"
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert second.returncode == 1 and "not empty" in second.stdout + second.stderr
    assert not (tmp_path / "outputs").exists()  # pcbseg-synth leaves no Hydra run folders behind
