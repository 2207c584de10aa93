import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pcbseg.data.datamodule import PCBDataModule
from pcbseg.data.layout import DatasetError
from pcbseg.data.validate import check_dataset, validate_dataset


def _errors(root: Path) -> list[str]:
    return [str(p) for p in validate_dataset(root) if p.level == "error"]


def test_clean_dataset_has_no_problems(dataset: Path):
    assert validate_dataset(dataset) == []


def test_corrupt_image(dataset: Path):
    (dataset / "images" / "board_00001.png").write_bytes(b"not a png at all")
    (msg,) = _errors(dataset)
    assert "board_00001.png" in msg and "cannot be read" in msg


def test_missing_mask(dataset: Path):
    (dataset / "masks" / "board_00002.png").unlink()
    (msg,) = _errors(dataset)
    assert "board_00002" in msg and "has no mask" in msg


def test_mask_size_differs_from_image(dataset: Path):
    cv2.imwrite(str(dataset / "masks" / "board_00003.png"), np.zeros((50, 60), np.uint8))
    (msg,) = _errors(dataset)
    assert "board_00003.png" in msg and "60x50" in msg and "96x96" in msg


def test_unknown_class_id(dataset: Path):
    mask = cv2.imread(str(dataset / "masks" / "board_00004.png"), cv2.IMREAD_UNCHANGED)
    mask[0, 0] = 42
    cv2.imwrite(str(dataset / "masks" / "board_00004.png"), mask)
    (msg,) = _errors(dataset)
    assert "board_00004.png" in msg and "[42]" in msg


def test_colour_mask_is_refused(dataset: Path):
    cv2.imwrite(str(dataset / "masks" / "board_00005.png"), np.zeros((96, 96, 3), np.uint8))
    (msg,) = _errors(dataset)
    assert "board_00005.png" in msg and "3 channels" in msg


def test_empty_dataset(tmp_path: Path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    assert any("empty dataset" in m for m in _errors(tmp_path))


def test_split_file_naming_ids_that_do_not_exist(dataset: Path):
    with (dataset / "splits.csv").open("a") as f:
        f.write("ghost_board,val,ghost_board\n")
    (msg,) = _errors(dataset)
    assert "splits.csv" in msg and "ghost_board" in msg


def test_all_problems_are_reported_at_once_and_before_training(dataset: Path):
    (dataset / "images" / "board_00001.png").write_bytes(b"garbage")
    (dataset / "masks" / "board_00002.png").unlink()
    cv2.imwrite(str(dataset / "masks" / "board_00003.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(DatasetError) as err:
        check_dataset(dataset)
    text = str(err.value)
    assert "3 problem(s)" in text and all(f"board_0000{i}" in text for i in (1, 2, 3))
    dm = PCBDataModule(dataset)
    with pytest.raises(DatasetError, match="3 problem"):
        dm.prepare_data()


def test_cli_prints_problems_and_exits_nonzero(dataset: Path):
    ok = subprocess.run([sys.executable, "-m", "pcbseg.data.validate", str(dataset)], capture_output=True, text=True)
    assert ok.returncode == 0 and "0 error(s)" in ok.stdout and "train=" in ok.stdout
    (dataset / "masks" / "board_00002.png").unlink()
    bad = subprocess.run([sys.executable, "-m", "pcbseg.data.validate", str(dataset)], capture_output=True, text=True)
    assert bad.returncode == 1 and "board_00002" in bad.stdout


def test_group_on_both_sides_of_the_holdout_is_reported(dataset: Path):
    text = (dataset / "splits.csv").read_text().replace("board_00001,train,board_00001", "board_00001,train,board_00000")
    text = text.replace("board_00000,train,board_00000", "board_00000,val,board_00000")
    (dataset / "splits.csv").write_text(text)
    assert any("board_00000" in m and "leaks" in m for m in _errors(dataset))


def _warnings(root: Path) -> list[str]:
    return [str(p) for p in validate_dataset(root) if p.level == "warning"]


def test_masks_of_one_class_only_are_an_error(dataset: Path):
    for m in (dataset / "masks").glob("*.png"):
        cv2.imwrite(str(m), np.zeros(cv2.imread(str(m), cv2.IMREAD_UNCHANGED).shape, np.uint8))
    (msg,) = _errors(dataset)
    assert "every mask holds only class 'background'" in msg and "nothing to learn" in msg


def test_a_class_with_no_pixel_and_a_class_only_in_val_are_flagged(dataset: Path):
    from pcbseg.data.splits import read_splits

    via = 2
    train = {r.id for r in read_splits(dataset / "splits.csv") if r.split == "train"}
    for m in (dataset / "masks").glob("*.png"):
        mask = cv2.imread(str(m), cv2.IMREAD_UNCHANGED)
        mask[mask == 6] = 0  # silkscreen gone everywhere
        if m.stem in train:
            mask[mask == via] = 0  # vias left in val only
        cv2.imwrite(str(m), mask)
    warnings = _warnings(dataset)
    assert any("['silkscreen'] have no pixel in any mask" in w for w in warnings), warnings
    assert any("['via'] have pixels only outside the train split" in w for w in warnings), warnings
    assert not _errors(dataset)


def test_an_empty_val_split_is_flagged(dataset: Path):
    splits = dataset / "splits.csv"
    splits.write_text(splits.read_text().replace(",val,", ",train,"))
    assert any("the val split is empty" in w for w in _warnings(dataset))
