"""pcbseg-import coco / yolo / cvat / check on exports built on the fly from synthetic boards.

Each export holds augmented copies of a few source boards (turned, mirrored, brighter, cropped),
named the way labelling tools name them, so the tests can check the masks, the class mapping, the
grouping, and that the leakage check finds planted duplicates and leaves distinct boards alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils

from pcbseg.cli.import_ import main as import_main
from pcbseg.data.builder import DEFAULT_GROUP_PATTERN
from pcbseg.data.layout import DatasetLayout, read_mask
from pcbseg.data.leakage import Fingerprint, compare, find_leaks
from pcbseg.data.splits import group_of, read_splits
from pcbseg.data.synth import render_board
from pcbseg.data.validate import validate_dataset
from pcbseg.taxonomy import get_taxonomy

TAX = get_taxonomy("default")
# Export categories as a labelling tool would name them; "R" needs --map, the rest map by name.
CATEGORIES = {"Trace": 1, "via": 2, "PAD": 3, "R": 4, "hole": 5, "Silkscreen": 6}


def board(seed: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    return render_board(seed, size)


def augment(image: np.ndarray, mask: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The copies labelling tools make: turned, mirrored, brighter, cropped and zoomed."""
    if kind == "rot90":
        return np.rot90(image).copy(), np.rot90(mask).copy()
    if kind == "flip":
        return image[:, ::-1].copy(), mask[:, ::-1].copy()
    if kind == "bright":
        return np.clip(image.astype(int) * 13 // 10 + 10, 0, 255).astype(np.uint8), mask
    if kind == "crop":
        h, w = mask.shape
        y0, x0, y1, x1 = h // 10, w // 7, h - h // 12, w - w // 20
        return (cv2.resize(image[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_LINEAR),
                cv2.resize(mask[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_NEAREST))
    raise ValueError(kind)


def polygons(mask: np.ndarray, class_id: int) -> list[np.ndarray]:
    """Outer outlines of one class, in pixel-corner coordinates (x + 0.5 is a pixel's centre).

    Traced at 4x so the outline runs just inside the pixels' edges, as a person would draw it, not
    through the centres of the edge pixels.
    """
    up = cv2.resize((mask == class_id).astype(np.uint8), None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [(c.reshape(-1, 2).astype(float) + 0.5) / 4 for c in contours if len(c) >= 3]


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


def off_outline(got: np.ndarray, expected: np.ndarray) -> float:
    """Share of pixels that differ away from any class outline (polygon rasterisers differ on outlines only).

    A shape touching the image's edge has an outline there too.
    """
    k = np.ones((3, 3), np.uint8)
    outline = cv2.dilate(expected, k) != cv2.erode(expected, k, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return float(((got != expected) & ~outline).mean())


def coco_segmentations(mask: np.ndarray, class_id: int, rle: bool) -> list[list | dict]:
    """One instance per connected region: a polygon, or compressed RLE (always with ``rle``, and for a
    region with holes, which a COCO polygon cannot describe; labelling tools do the same)."""
    out: list[list | dict] = []
    n, labels = cv2.connectedComponents((mask == class_id).astype(np.uint8), connectivity=8)
    for k in range(1, n):
        region = (labels == k).astype(np.uint8)
        _, hierarchy = cv2.findContours(region, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if rle or (hierarchy[0][:, 3] >= 0).any():
            enc = mask_utils.encode(np.asfortranarray(region))
            out.append({"size": enc["size"], "counts": enc["counts"].decode()})
        else:
            out.append([poly.ravel().tolist() for poly in polygons(region, 1)])
    return out


def write_coco(folder: Path, items: list[tuple[str, np.ndarray, np.ndarray]], rle: bool = False) -> Path:
    folder.mkdir(parents=True)
    doc = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CATEGORIES)]}
    cat_of = {cid: i + 1 for i, cid in enumerate(CATEGORIES.values())}
    for n, (name, image, mask) in enumerate(items):
        cv2.imwrite(str(folder / name), image[..., ::-1])
        h, w = mask.shape
        doc["images"].append({"id": n, "file_name": name, "height": h, "width": w})
        for cid, cat in cat_of.items():
            for segm in coco_segmentations(mask, cid, rle):
                doc["annotations"].append({"id": len(doc["annotations"]), "image_id": n, "category_id": cat,
                                           "segmentation": segm, "iscrowd": 0})
    path = folder / "_annotations.coco.json"
    path.write_text(json.dumps(doc))
    return path


# --- groups -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name,group", [
    ("board3", "board3"),
    ("board3_rot90", "board3"),
    ("board3_rot90_bright", "board3"),
    ("board3-flip", "board3"),
    ("IMG_0042_jpg.rf.3f2a9c0d1e", "IMG_0042"),
    ("IMG_0042_rot90_jpg.rf.aa11bb22", "IMG_0042"),
    ("pcb_12_aug3", "pcb_12"),
    ("IMG_0042_jpg.rf.3f2a9c0d1e_rot90", "IMG_0042"),  # augmented after the export: suffix after the hash
    ("IMG_0042_JPG.rf.3F2A9C_flip_bright", "IMG_0042"),
    ("brightness_test", "brightness_test"),  # a name that merely starts like a suffix is left alone
])
def test_default_group_pattern_strips_augmentation_suffixes(name: str, group: str):
    assert group_of(name, DEFAULT_GROUP_PATTERN) == group


# --- COCO -------------------------------------------------------------------------------------


@pytest.fixture
def coco_export(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    items, truth = [], {}
    for s in range(4):
        image, mask = board(100 + s)
        for kind in ("", "_rot90", "_bright"):
            img, m = augment(image, mask, kind[1:]) if kind else (image, mask)
            items.append((f"b{s}{kind}.png", img, m))
            truth[f"b{s}{kind}"] = m
    return write_coco(tmp_path / "export", items), truth


def test_coco_polygons_become_masks_grouped_by_source(coco_export, tmp_path: Path):
    json_path, truth = coco_export
    out = tmp_path / "ds"
    assert import_main(["coco", str(json_path), "--out", str(out), "--classes", "default", "--map", "R=component",
                        "--valid-pct", "0.25"]) == 0
    assert validate_dataset(out) == []
    for image_id, expected in truth.items():
        got = read_mask(DatasetLayout(out).mask_path(image_id))
        assert agreement(got, expected) > 0.98, image_id
        assert off_outline(got, expected) < 0.002, image_id
        assert set(np.unique(got)) <= set(np.unique(expected)), image_id
    rows = read_splits(out / "splits.csv")
    by_group: dict[str, set[str]] = {}
    for r in rows:
        by_group.setdefault(r.group, set()).add(r.split)
    assert sorted(by_group) == ["b0", "b1", "b2", "b3"]
    assert all(len(s) == 1 for s in by_group.values())
    assert sum(r.split == "val" for r in rows) == 3  # one source board, all three copies
    report = (out / "import_report.md").read_text()
    assert "| component |" in report and "smaller one" in report


def test_coco_rle_is_exact(tmp_path: Path):
    image, mask = board(5)
    json_path = write_coco(tmp_path / "export", [("a.png", image, mask), ("b.png", *board(6))], rle=True)
    out = tmp_path / "ds"
    assert import_main(["coco", str(json_path.parent), "--out", str(out), "--classes", "default", "--map", "R=component"]) == 0
    np.testing.assert_array_equal(read_mask(DatasetLayout(out).mask_path("a")), mask)


def test_coco_smaller_instance_wins_an_overlap(tmp_path: Path):
    folder = tmp_path / "export"
    folder.mkdir()
    cv2.imwrite(str(folder / "x.png"), np.zeros((20, 20, 3), np.uint8))
    big, small = [2, 2, 18, 2, 18, 18, 2, 18], [8, 8, 12, 8, 12, 12, 8, 12]
    doc = {"images": [{"id": 1, "file_name": "x.png", "height": 20, "width": 20}],
           "categories": [{"id": 1, "name": "pad"}, {"id": 2, "name": "component"}],
           # the pad is listed first: order in the file must not decide
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [small]},
                           {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [big]}]}
    (folder / "a.json").write_text(json.dumps(doc))
    out = tmp_path / "ds"
    assert import_main(["coco", str(folder / "a.json"), "--out", str(out), "--classes", "default", "--valid-pct", "0"]) == 0
    m = read_mask(DatasetLayout(out).mask_path("x"))
    assert m[10, 10] == TAX.id_of("pad") and m[4, 4] == TAX.id_of("component") and m[0, 0] == 0


def test_coco_unmapped_category_is_named_and_can_be_ignored(coco_export, tmp_path: Path, capsys):
    json_path, truth = coco_export
    assert import_main(["coco", str(json_path), "--out", str(tmp_path / "a"), "--classes", "default"]) == 1
    err = capsys.readouterr().err
    assert "'R'" in err and "--map" in err and str(json_path) in err
    assert not (tmp_path / "a").exists()
    args = ["coco", str(json_path), "--out", str(tmp_path / "b"), "--classes", "default", "--unmapped", "ignore"]
    assert import_main(args) == 0
    got = read_mask(DatasetLayout(tmp_path / "b").mask_path("b0"))
    assert (got == TAX.ignore_index).sum() > 0.8 * (truth["b0"] == TAX.id_of("component")).sum()


def test_coco_default_classes_are_the_export_categories(coco_export, tmp_path: Path):
    json_path, _ = coco_export
    out = tmp_path / "ds"
    assert import_main(["coco", str(json_path), "--out", str(out)]) == 0
    names = [c["name"] for c in yaml.safe_load((out / "classes.yaml").read_text())["classes"]]
    assert names == ["background", *CATEGORIES]


def test_coco_bad_input_names_the_file(tmp_path: Path, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    assert import_main(["coco", str(bad), "--out", str(tmp_path / "ds")]) == 1
    assert str(bad) in capsys.readouterr().err
    json_path = write_coco(tmp_path / "e", [("a.png", *board(1)), ("b.png", *board(2))])
    (json_path.parent / "b.png").unlink()
    out = tmp_path / "ds2"
    assert import_main(["coco", str(json_path), "--out", str(out), "--map", "R=component", "--classes", "default"]) == 0
    assert "`b.png`: listed in _annotations.coco.json but not found" in (out / "import_report.md").read_text()


# --- YOLO -------------------------------------------------------------------------------------


def write_yolo(root: Path, splits: dict[str, list[tuple[str, np.ndarray, np.ndarray]]], box_line: bool = False) -> Path:
    names = list(CATEGORIES)
    for split, items in splits.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for name, image, mask in items:
            cv2.imwrite(str(root / split / "images" / f"{name}.jpg"), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            h, w = mask.shape
            lines = [f"{k} " + " ".join(f"{v:.6f}" for v in (poly / [w, h]).ravel())
                     for k, cid in enumerate(CATEGORIES.values()) for poly in polygons(mask, cid)]
            if box_line:
                lines.append("0 0.5 0.5 0.2 0.2")
            (root / split / "labels" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "../train/images", "val": "../valid/images",
                                                    "nc": len(names), "names": names}))
    return root


def test_yolo_keeps_the_export_split_and_warns_when_it_leaks(tmp_path: Path):
    a, b, c, d = (board(s) for s in (20, 21, 22, 23))
    splits = {
        "train": [("a_jpg.rf.0a1b2c", *a), ("a_rot90_jpg.rf.9f8e7d", *augment(*a, "rot90")), ("b_jpg.rf.11aa22", *b)],
        "valid": [("c_jpg.rf.33cc44", *c), ("d_jpg.rf.55dd66", *d),
                  # a planted leak: b, cropped, zoomed and brighter, under a name that hides its source
                  ("IMG_7781_jpg.rf.77ee88", *augment(*augment(*b, "crop"), "bright"))],
    }
    out = tmp_path / "ds"
    assert import_main(["yolo", str(write_yolo(tmp_path / "export", splits, box_line=True)), "--out", str(out),
                        "--classes", "default", "--map", "R=component"]) == 0
    assert validate_dataset(out) == []
    rows = {r.id: r for r in read_splits(out / "splits.csv")}
    assert {i for i, r in rows.items() if r.split == "val"} == {"c_jpg.rf.33cc44", "d_jpg.rf.55dd66", "IMG_7781_jpg.rf.77ee88"}
    assert rows["a_rot90_jpg.rf.9f8e7d"].group == rows["a_jpg.rf.0a1b2c"].group == "a"
    got = read_mask(DatasetLayout(out).mask_path("a_rot90_jpg.rf.9f8e7d"))
    assert agreement(got, np.rot90(a[1])) > 0.97 and off_outline(got, np.rot90(a[1])) < 0.002
    report = (out / "import_report.md").read_text()
    assert re.search(r"\| b_jpg\.rf\.11aa22 \| train \| IMG_7781_jpg\.rf\.77ee88 \| val \|", report) or \
        re.search(r"\| IMG_7781_jpg\.rf\.77ee88 \| val \| b_jpg\.rf\.11aa22 \| train \|", report), report
    assert "1 pair(s) of near-duplicate images" in report
    assert "6 shape(s) dropped" in report and report.count("a box, not an outline") == 6  # each box line named


def test_yolo_group_leak_in_the_export_split_is_reported(tmp_path: Path):
    a, b = board(30), board(31)
    splits = {"train": [("a", *a), ("b", *b)], "valid": [("a_flip", *augment(*a, "flip"))]}
    out = tmp_path / "ds"
    assert import_main(["yolo", str(write_yolo(tmp_path / "export", splits)), "--out", str(out), "--classes", "default",
                        "--map", "R=component", "--no-pixel-check"]) == 0
    assert "1 group(s) sit in more than one split, e.g. a (train/val)" in (out / "import_report.md").read_text()


def test_yolo_refuses_a_non_empty_out(tmp_path: Path, capsys):
    export = write_yolo(tmp_path / "export", {"train": [("a", *board(1))]})
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert import_main(["yolo", str(export), "--out", str(out), "--unmapped", "skip"]) == 1
    assert "--overwrite" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"


# --- CVAT -------------------------------------------------------------------------------------


def test_cvat_polygons_with_z_order_and_ignored_boxes(tmp_path: Path):
    folder = tmp_path / "cvat"
    (folder / "images").mkdir(parents=True)
    cv2.imwrite(str(folder / "images" / "p.png"), np.zeros((30, 40, 3), np.uint8))
    cv2.imwrite(str(folder / "images" / "q.png"), np.zeros((30, 40, 3), np.uint8))
    xml = """<?xml version="1.0"?><annotations><version>1.1</version>
      <meta><task><labels><label><name>trace</name></label><label><name>pad</name></label></labels></task></meta>
      <image id="0" name="p.png" width="40" height="30">
        <polygon label="pad" z_order="0" points="5,5;15,5;15,15;5,15"/>
        <polygon label="trace" z_order="1" points="0,8;40,8;40,12;0,12"/>
        <box label="pad" xtl="30" ytl="20" xbr="35" ybr="25" z_order="0"/>
      </image>
      <image id="1" name="q.png" width="40" height="30"/></annotations>"""
    (folder / "annotations.xml").write_text(xml)
    out = tmp_path / "ds"
    assert import_main(["cvat", str(folder / "annotations.xml"), "--out", str(out), "--valid-pct", "0.5"]) == 0
    m = read_mask(DatasetLayout(out).mask_path("p"))
    names = [c["name"] for c in yaml.safe_load((out / "classes.yaml").read_text())["classes"]]
    assert names == ["background", "trace", "pad"]
    assert m[10, 10] == 1  # the trace has the higher z-order, so it crosses the pad
    assert m[6, 6] == 2 and m[22, 32] == 0  # the box outlines nothing
    report = (out / "import_report.md").read_text()
    assert "| `p.png` | <box> #2 (pad) | outlines no area" in report and "1 shape(s) dropped" in report


# --- leakage check ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rot90", "flip", "bright", "crop"])
def test_a_planted_copy_is_found(kind: str):
    image, mask = board(40, 160)
    copy = augment(image, mask, kind)[0]
    assert compare(Fingerprint.of(image), Fingerprint.of(copy)).duplicate or \
        compare(Fingerprint.of(copy), Fingerprint.of(image)).duplicate


def _reshoot(image: np.ndarray, seed: int) -> np.ndarray:
    """The board photographed again: perspective (corners moved up to 8%), a turn, gamma, white balance, focus."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src + rng.uniform(-0.08, 0.08, (4, 2)) * [w, h]).astype(np.float32)
    out = cv2.warpPerspective(image, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REFLECT)
    out = (255 * (out / 255.0) ** rng.uniform(0.6, 1.6) * rng.uniform(0.8, 1.2, 3)).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.rot90(cv2.GaussianBlur(out, (0, 0), 1.2), 1 + seed % 3))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_board_photographed_again_from_another_angle_is_found(seed: int):
    image = board(50 + seed, 192)[0]
    a, b = Fingerprint.of(image), Fingerprint.of(_reshoot(image, seed))
    m = max(compare(a, b), compare(b, a), key=lambda m: (m.duplicate, m.correlation))
    assert m.duplicate, m


def test_different_boards_sharing_one_identical_part_are_not_flagged():
    a, b = board(60, 192)[0].copy(), board(61, 192)[0].copy()
    part = board(62, 192)[0][40:80, 40:80]  # the same 40 x 40 px connector on both (4% of each picture)
    a[10:50, 10:50] = part
    b[130:170, 120:160] = part
    fa, fb = Fingerprint.of(a), Fingerprint.of(b)
    assert not compare(fa, fb).duplicate and not compare(fb, fa).duplicate


def test_check_finds_planted_duplicates_and_no_distinct_boards(dataset: Path, capsys):
    """The session dataset's 12 distinct boards plus three copies planted across splits."""
    layout = DatasetLayout(dataset)
    rows = read_splits(layout.splits)
    clean = import_main(["check", str(dataset)])
    assert clean == 0, capsys.readouterr().out
    assert "0 near-duplicate pair(s)" in capsys.readouterr().out
    train = [r.id for r in rows if r.split == "train"][:3]
    files, _ = layout.image_files()
    planted = []
    for src, kind in zip(train, ["rot90", "crop", "flip"], strict=True):
        img = cv2.imread(str(files[src]))
        copy, m = augment(img, read_mask(layout.mask_path(src)), kind)
        new_id = f"photo_{kind}_x"
        cv2.imwrite(str(layout.images / f"{new_id}.png"), augment(copy, m, "bright")[0])
        cv2.imwrite(str(layout.mask_path(new_id)), m)
        planted.append((src, new_id))
    with layout.splits.open("a") as f:
        f.writelines(f"{new},val,{new}\n" for _, new in planted)
    report = dataset / "leaks.md"
    assert import_main(["check", str(dataset), "--report", str(report)]) == 1
    text = report.read_text()
    assert "3 near-duplicate pair(s)" in text
    for src, new in planted:
        assert re.search(rf"\| {src} \| train \| {new} \| val \||\| {new} \| val \| {src} \| train \|", text), (src, new)


def test_the_shortlist_finds_what_comparing_every_pair_finds():
    """Above EXHAUSTIVE_PAIRS only each image's best candidates are compared: planted copies must be among them."""
    boards = {f"b{i}": board(400 + i, 160)[0] for i in range(16)}
    copies = {f"copy{i}": augment(*augment(boards[f"b{i}"], np.zeros((160, 160), np.uint8), kind), "bright")[0]
              for i, kind in zip(range(4), ["rot90", "crop", "flip", "crop"], strict=True)}
    prints = {k: Fingerprint.of(v) for k, v in {**boards, **copies}.items()}
    splits = {k: "val" if k.startswith("copy") else "train" for k in prints}
    everything = find_leaks(prints, splits, exhaustive=True)
    shortlist = find_leaks(prints, splits, exhaustive=False)
    assert {(lk.a, lk.b) for lk in shortlist} == {(lk.a, lk.b) for lk in everything} == {(f"b{i}", f"copy{i}") for i in range(4)}


def test_distinct_boards_are_not_flagged():
    prints = {f"b{i}": Fingerprint.of(board(200 + i, 160)[0]) for i in range(10)}
    assert find_leaks(prints, {k: ("val" if k == "b0" else "train") for k in prints}) == []
    assert find_leaks(prints, {k: ("val" if k in ("b1", "b2", "b3") else "train") for k in prints}) == []


def test_group_duplicates_keeps_a_recropped_photo_with_its_source(tmp_path: Path):
    images, masks = tmp_path / "img", tmp_path / "gt"
    images.mkdir()
    masks.mkdir()
    for s in range(6):
        image, mask = board(300 + s)
        cv2.imwrite(str(images / f"p{s}.png"), image[..., ::-1])
        cv2.imwrite(str(masks / f"p{s}.png"), mask)
    image, mask = augment(*augment(*board(300), "crop"), "rot90")  # p0 again, re-shot: a name that hides it
    cv2.imwrite(str(images / "z_other.png"), image[..., ::-1])
    cv2.imwrite(str(masks / "z_other.png"), mask)
    out = tmp_path / "ds"
    assert import_main(["masks", str(images), str(masks), "--out", str(out), "--classes", ",".join(TAX.names),
                        "--group-duplicates"]) == 0
    rows = {r.id: r for r in read_splits(out / "splits.csv")}
    assert rows["z_other"].group == rows["p0"].group == "p0" and rows["z_other"].split == rows["p0"].split
    assert len({r.group for r in rows.values()}) == 6
    assert "7 by name, 6 after merging" in (out / "import_report.md").read_text()


def test_merge_keeps_each_split_and_refuses_other_classes(synth_root: Path, tmp_path: Path, capsys):
    import shutil

    a, b = (Path(shutil.copytree(synth_root, tmp_path / n)) for n in ("a", "b"))
    out = tmp_path / "ab"
    assert import_main(["merge", str(a), str(b), "--out", str(out)]) == 0
    original = {r.id: r for r in read_splits(synth_root / "splits.csv")}
    merged = read_splits(out / "splits.csv")
    assert len(merged) == 2 * len(original)
    for r in merged:
        src, image_id = r.id.split("__")
        assert r.split == original[image_id].split and r.group == f"{src}__{original[image_id].group}"
    assert validate_dataset(out) == []
    other = tmp_path / "other"
    (other / "images").mkdir(parents=True)
    (other / "masks").mkdir()
    for i in range(2):
        cv2.imwrite(str(other / "images" / f"x{i}.png"), np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(str(other / "masks" / f"x{i}.png"), np.zeros((8, 8), np.uint8))
    assert import_main(["masks", str(other / "images"), str(other / "masks"), "--out", str(tmp_path / "c"),
                        "--classes", "background,resistor"]) == 0
    assert import_main(["merge", str(a), str(tmp_path / "c"), "--out", str(tmp_path / "ac")]) == 1
    assert str(tmp_path / "c" / "classes.yaml") in capsys.readouterr().err


def test_coco_panoptic_png_segments(tmp_path: Path):
    image, mask = board(9, 64)
    folder = tmp_path / "export"
    (folder / "panoptic").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), image[..., ::-1])
    seg_ids = np.zeros(mask.shape, np.int64)
    infos = []
    for k, cid in enumerate(CATEGORIES.values(), start=1):
        seg = 1000 + 7 * k  # ids above 255 exercise the R + 256 G + 256² B encoding
        seg_ids[mask == cid] = seg
        infos.append({"id": seg, "category_id": k, "iscrowd": 0})
    rgb = np.stack([seg_ids % 256, seg_ids // 256 % 256, seg_ids // 65536], axis=-1).astype(np.uint8)
    cv2.imwrite(str(folder / "panoptic" / "a.png"), rgb[..., ::-1])
    doc = {"images": [{"id": 1, "file_name": "a.png", "height": 64, "width": 64}],
           "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CATEGORIES)],
           "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": infos}]}
    (folder / "panoptic.json").write_text(json.dumps(doc))
    out = tmp_path / "ds"
    assert import_main(["coco", str(folder / "panoptic.json"), "--out", str(out), "--classes", "default",
                        "--map", "R=component", "--valid-pct", "0"]) == 0
    np.testing.assert_array_equal(read_mask(DatasetLayout(out).mask_path("a")), mask)


def test_a_corrupt_image_or_label_is_skipped_and_named(tmp_path: Path):
    export = write_yolo(tmp_path / "export", {"train": [("a", *board(1)), ("b", *board(2))], "valid": [("c", *board(3))]})
    (export / "train" / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    (export / "train" / "labels" / "b.txt").write_text("0 0.1 0.1 0.5\n")  # 3 numbers: neither box nor polygon
    out = tmp_path / "ds"
    assert import_main(["yolo", str(export), "--out", str(out), "--classes", "default", "--map", "R=component",
                        "--no-pixel-check"]) == 0
    assert sorted(r.id for r in read_splits(out / "splits.csv")) == ["a", "b", "c"]  # b keeps its image, loses the line
    report = (out / "import_report.md").read_text()
    assert f"`{export / 'train' / 'images' / 'broken.jpg'}`: cannot be read as an image" in report
    assert "| `b.txt` | line 1 | 3 coordinates" in report
