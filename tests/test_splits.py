import csv
from pathlib import Path

import pytest

from pcbseg.data.layout import DatasetError
from pcbseg.data.splits import assign_splits, ensure_splits, group_of, leaking_groups, read_splits

IDS = [f"img{i:03d}" for i in range(50)]


def _table(rows) -> dict[str, str]:
    return {r.id: r.split for r in rows}


def test_new_split_has_the_asked_fraction_and_is_seeded(tmp_path: Path):
    rows = ensure_splits(tmp_path / "splits.csv", IDS, valid_pct=0.2, seed=1)
    assert sum(r.split == "val" for r in rows) == 10
    again = ensure_splits(tmp_path / "other.csv", IDS, valid_pct=0.2, seed=1)
    assert _table(rows) == _table(again)
    other = ensure_splits(tmp_path / "third.csv", IDS, valid_pct=0.2, seed=2)
    assert _table(rows) != _table(other)


def test_split_never_moves_when_seed_or_pct_change(tmp_path: Path):
    path = tmp_path / "splits.csv"
    first = ensure_splits(path, IDS, valid_pct=0.2, seed=1)
    before = path.read_bytes()
    for kwargs in ({"seed": 99}, {"valid_pct": 0.5}, {"test_pct": 0.3, "seed": 5}):
        assert _table(ensure_splits(path, IDS, **kwargs)) == _table(first)
    assert path.read_bytes() == before


def test_groups_never_straddle_splits(tmp_path: Path):
    ids = [f"board{b}_{aug}" for b in range(20) for aug in ("orig", "rot90", "bright")]
    rows = ensure_splits(tmp_path / "splits.csv", ids, valid_pct=0.25, test_pct=0.1, seed=3,
                         group_pattern=r"^(board\d+)_")
    assert not leaking_groups(rows)
    assert {r.group for r in rows} == {f"board{b}" for b in range(20)}
    assert sum(r.split == "val" for r in rows) == 5 * 3
    assert sum(r.split == "test" for r in rows) == 2 * 3


def test_group_of_uses_first_capture_group_or_falls_back_to_id():
    assert group_of("p1.rf.abc123", r"^(.*?)\.rf\.") == "p1"
    assert group_of("x", r"^(board\d+)") == "x"
    assert group_of("x", None) == "x"


def test_new_images_join_their_groups_split_or_train(tmp_path: Path):
    path = tmp_path / "splits.csv"
    ids = [f"b{i}_a" for i in range(10)]
    first = _table(ensure_splits(path, ids, valid_pct=0.3, seed=0, group_pattern=r"^(b\d+)_"))
    val_board = next(i for i, s in first.items() if s == "val").split("_")[0]
    added = [f"{val_board}_b", "new9_a"]
    rows = _table(ensure_splits(path, ids + added, group_pattern=r"^(b\d+|new\d+)_"))
    assert {k: rows[k] for k in first} == first  # existing rows untouched
    assert rows[f"{val_board}_b"] == "val" and rows["new9_a"] == "train"
    assert _table(read_splits(path)) == rows  # appended, persisted


def test_new_images_can_be_refused(tmp_path: Path):
    path = tmp_path / "splits.csv"
    ensure_splits(path, IDS[:10])
    before = path.read_bytes()
    with pytest.raises(DatasetError, match="not in the split file"):
        ensure_splits(path, IDS[:11], new_images="error")
    assert path.read_bytes() == before


def test_split_naming_missing_ids_is_an_error(tmp_path: Path):
    path = tmp_path / "splits.csv"
    ensure_splits(path, IDS[:10])
    with pytest.raises(DatasetError) as err:
        ensure_splits(path, IDS[:8])
    assert str(path) in str(err.value) and "img008" in str(err.value)


def test_regenerate_only_when_asked_and_keeps_a_backup(tmp_path: Path):
    path = tmp_path / "splits.csv"
    first = _table(ensure_splits(path, IDS, seed=1))
    old = path.read_bytes()
    second = _table(ensure_splits(path, IDS, seed=2, regenerate=True))
    assert second != first
    backups = list(tmp_path.glob("splits.csv.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == old


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("name,split\n", "header"),
        ("id,split,group\na,holdout,a\n", "holdout"),
        ("id,split,group\na,val,a\na,train,a\n", "already listed"),
    ],
)
def test_malformed_split_file_is_named(tmp_path: Path, content: str, needle: str):
    path = tmp_path / "splits.csv"
    path.write_text(content)
    with pytest.raises(DatasetError) as err:
        read_splits(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_assign_splits_always_leaves_train_nonempty():
    assert sorted(assign_splits(["a", "b"], valid_pct=0.5, test_pct=0.4).values()) == ["train", "val"]
    assert assign_splits(["only"], valid_pct=0.2) == {"only": "train"}


def test_written_file_is_plain_csv(tmp_path: Path):
    ensure_splits(tmp_path / "splits.csv", IDS[:3])
    with (tmp_path / "splits.csv").open() as f:
        assert next(csv.reader(f)) == ["id", "split", "group"]
