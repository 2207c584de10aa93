"""pcbseg-import masks: matching by stem, mask kinds, refusing to overwrite, the real resistor set."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pcbseg.cli.import_ import main as import_main
from pcbseg.data.layout import read_mask
from pcbseg.data.splits import read_splits
from pcbseg.data.validate import validate_dataset
from pcbseg.taxonomy import load_classes

RESISTOR = Path(__file__).resolve().parents[2] / "shared" / "data" / "pcb-resistor"


def _pairs(tmp: Path) -> tuple[Path, Path]:
    images, masks = tmp / "img", tmp / "gt"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for i, ext in enumerate([".png", ".JPG", ".jpg"]):
        cv2.imwrite(str(images / f"p{i}{ext}"), rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))
        m = np.full((40, 30), 250, np.uint8)
        m[10:30, 5:20] = 4  # dark foreground, slightly off 0 like a JPEG mask
        cv2.imwrite(str(masks / f"p{i}.jpg"), m)
    cv2.imwrite(str(images / "orphan.png"), np.zeros((8, 8, 3), np.uint8))
    return images, masks


def test_binary_masks_import_with_dark_foreground(tmp_path: Path):
    images, masks = _pairs(tmp_path)
    out = tmp_path / "ds"
    args = ["masks", str(images), str(masks), "--out", str(out), "--mode", "binary", "--foreground", "dark",
            "--classes", "background,resistor"]
    assert import_main(args) == 0
    assert validate_dataset(out) == []
    assert load_classes(out / "classes.yaml").names == ("background", "resistor")
    m = read_mask(out / "masks" / "p1.png")
    assert m[20, 10] == 1 and m[0, 0] == 0 and set(np.unique(m)) == {0, 1}
    assert sorted(r.id for r in read_splits(out / "splits.csv")) == ["p0", "p1", "p2"]
    report = (out / "import_report.md").read_text()
    assert "orphan.png" in report and "no mask" in report
    # A second import into the same folder is refused and changes nothing.
    before = (out / "splits.csv").read_bytes()
    assert import_main(args) == 1
    assert (out / "splits.csv").read_bytes() == before


def test_index_masks_with_unknown_ids_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    images, masks = _pairs(tmp_path)  # the masks hold 4 and 250: not ids of a 2-class set
    assert import_main(["masks", str(images), str(masks), "--out", str(tmp_path / "ds"), "--classes", "a,b"]) == 1
    assert "no image could be imported" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.skipif(not RESISTOR.is_dir(), reason="../shared/data/pcb-resistor not present")
def test_real_resistor_set_imports_whole(tmp_path: Path):
    out = tmp_path / "res"
    args = ["masks", str(RESISTOR / "image"), str(RESISTOR / "GT"), "--out", str(out), "--mode", "binary",
            "--foreground", "dark", "--classes", "background,resistor"]
    assert import_main(args) == 0
    assert len(list((out / "images").iterdir())) == 400 and validate_dataset(out) == []
    share = np.mean([(read_mask(p) == 1).mean() for p in sorted((out / "masks").iterdir())[:50]])
    assert 0.1 < share < 0.6  # the resistor body is a large part of each crop, never all of it


@pytest.mark.parametrize("text, words", [
    ("0: [0, 0, 0\n", "not valid YAML"),
    ("- [0, 0, 0]\n", "expected a mapping"),
    ("0: [0, 0]\n", "must be CLASS_ID: [r, g, b]"),
    ("0: [0, 0, 300]\n", "must be CLASS_ID: [r, g, b]"),
    ("background: [0, 0, 0]\n", "must be CLASS_ID: [r, g, b]"),
    ("0: [1, 2, 3]\n1: [1, 2, 3]\n", "is given to class 0 and to 1"),
])
def test_bad_colour_maps_are_named(tmp_path: Path, capsys: pytest.CaptureFixture, text: str, words: str):
    images, masks = _pairs(tmp_path)
    cmap = tmp_path / "colours.yaml"
    cmap.write_text(text)
    args = ["masks", str(images), str(masks), "--out", str(tmp_path / "ds"), "--mode", "colour", "--colour-map",
            str(cmap), "--classes", "background,resistor"]
    assert import_main(args) == 1
    err = capsys.readouterr().err
    assert words in err and str(cmap) in err and "Traceback" not in err
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("text, words", [("[resistor, component]\n", "expected a mapping"),
                                         ("a: [b]\n", "expected a class name"), ("a: {b\n", "not valid YAML")])
def test_bad_map_files_are_named(tmp_path: Path, capsys: pytest.CaptureFixture, text: str, words: str):
    mapping = tmp_path / "map.yaml"
    mapping.write_text(text)
    (tmp_path / "ann.json").write_text('{"images": [], "annotations": [], "categories": []}')
    assert import_main(["coco", str(tmp_path / "ann.json"), "--out", str(tmp_path / "ds"), "--map-file", str(mapping)]) == 1
    err = capsys.readouterr().err
    assert words in err and str(mapping) in err
