"""Every shape lands in a mask or is named: COCO, YOLO and CVAT, one rasterisation rule, boxes-only exports."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pcbseg.cli.import_ import main as import_main
from pcbseg.data.layout import DatasetLayout, read_mask

W, H = 64, 48
# pad, trace, and a thin odd-angled sliver: sub-pixel vertices that different fill rules would paint differently
POLYGONS = {
    "pad": [[4.5, 4.25], [20.75, 4.5], [20.5, 18.25], [4.25, 18.5]],
    "trace": [[0.0, 30.0], [64.0, 26.5], [64.0, 29.75], [0.0, 33.25]],
    "via": [[40.2, 8.1], [47.9, 10.3], [44.6, 17.7], [38.1, 15.2], [37.3, 11.4]],
}
CLASSES = ["background", *POLYGONS]


def _flat(points: list[list[float]]) -> list[float]:
    return [v for xy in points for v in xy]


def _images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in names:
        cv2.imwrite(str(folder / n), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))


def _coco(folder: Path, annotations: list[dict] | None = None, categories: list[dict] | None = None) -> Path:
    _images(folder, ["p0.png", "p1.png"])
    cats = categories or [{"id": i + 1, "name": n} for i, n in enumerate(POLYGONS)]
    anns = annotations if annotations is not None else [
        {"id": k + 1, "image_id": 1, "category_id": k + 1, "segmentation": [_flat(pts)], "bbox": [0, 0, 1, 1]}
        for k, pts in enumerate(POLYGONS.values())]
    doc = {"images": [{"id": 1, "file_name": "p0.png", "width": W, "height": H},
                      {"id": 2, "file_name": "p1.png", "width": W, "height": H}],
           "annotations": anns, "categories": cats}
    path = folder / "annotations.json"
    path.write_text(json.dumps(doc))
    return path


def _yolo(folder: Path, lines: list[str] | None = None) -> Path:
    _images(folder / "train" / "images", ["p0.png", "p1.png"])
    labels = folder / "train" / "labels"
    labels.mkdir(parents=True)
    if lines is None:
        lines = [f"{k} " + " ".join(f"{x / W!r} {y / H!r}" for x, y in pts) for k, pts in enumerate(POLYGONS.values())]
    (labels / "p0.txt").write_text("\n".join(lines) + "\n")
    (folder / "data.yaml").write_text(yaml.safe_dump({"train": "train/images", "names": list(POLYGONS)}))
    return folder


def _cvat(folder: Path, shapes: str | None = None) -> Path:
    _images(folder / "images", ["p0.png", "p1.png"])
    if shapes is None:
        shapes = "".join(f'<polygon label="{n}" z_order="0" points="{";".join(f"{x},{y}" for x, y in pts)}"/>'
                         for n, pts in POLYGONS.items())
    labels = "".join(f"<label><name>{n}</name></label>" for n in POLYGONS)
    xml = (f'<?xml version="1.0"?><annotations><version>1.1</version><meta><task><labels>{labels}</labels></task></meta>'
           f'<image id="0" name="p0.png" width="{W}" height="{H}">{shapes}</image>'
           f'<image id="1" name="p1.png" width="{W}" height="{H}"/></annotations>')
    path = folder / "annotations.xml"
    path.write_text(xml)
    return path


def _run(kind: str, source: Path, out: Path, *extra: str) -> int:
    return import_main([kind, str(source), "--out", str(out), "--classes", ",".join(CLASSES), "--valid-pct", "0.5", *extra])


def test_one_polygon_gives_one_mask_whatever_the_format(tmp_path: Path):
    masks = {}
    for kind, write in (("coco", _coco), ("yolo", _yolo), ("cvat", _cvat)):
        out = tmp_path / f"{kind}-ds"
        assert _run(kind, write(tmp_path / kind), out) == 0
        masks[kind] = read_mask(DatasetLayout(out).mask_path("p0"))
    assert np.array_equal(masks["coco"], masks["yolo"]) and np.array_equal(masks["coco"], masks["cvat"])
    # pycocotools' rule: a polygon covers about its own area, not half a pixel more all round
    via = POLYGONS["via"]
    area = 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(via, via[1:] + via[:1], strict=True)))
    assert abs((masks["coco"] == 3).sum() - area) / area < 0.1


def test_coco_unknown_category_is_named_and_strict_refuses(tmp_path: Path, capsys: pytest.CaptureFixture):
    anns = [{"id": 7, "image_id": 1, "category_id": 1, "segmentation": [_flat(POLYGONS["pad"])]},
            {"id": 8, "image_id": 1, "category_id": 99, "segmentation": [_flat(POLYGONS["trace"])]}]
    src = _coco(tmp_path / "coco", anns)
    assert _run("coco", src, tmp_path / "strict", "--strict") == 1
    assert "annotation 8" in capsys.readouterr().err and not (tmp_path / "strict").exists()
    assert _run("coco", src, tmp_path / "ds") == 0
    err = capsys.readouterr().err
    assert "dropped: p0.png: annotation 8: category_id 99 is not in the file's categories" in err
    report = (tmp_path / "ds" / "import_report.md").read_text()
    assert "1 shape(s) dropped" in report and "| `p0.png` | annotation 8 |" in report
    assert (read_mask(DatasetLayout(tmp_path / "ds").mask_path("p0")) == 1).any()


def test_a_degenerate_coco_polygon_drops_itself_not_the_image(tmp_path: Path, capsys: pytest.CaptureFixture):
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [_flat(POLYGONS["pad"]), [3, 3, 5, 5]]},
            {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [[1, 1, 2, 2]]},
            {"id": 3, "image_id": 1, "category_id": 3, "segmentation": [_flat(POLYGONS["via"])]}]
    assert _run("coco", _coco(tmp_path / "coco", anns), tmp_path / "ds") == 0
    err = capsys.readouterr().err
    assert "annotation 1, polygon 1: fewer than 3 points" in err and "annotation 2: no outline" in err
    mask = read_mask(DatasetLayout(tmp_path / "ds").mask_path("p0"))
    assert (mask == 1).any() and (mask == 3).any() and not (mask == 2).any()


@pytest.mark.parametrize("kind", ["coco", "yolo", "cvat"])
def test_a_boxes_only_export_is_refused_or_painted_as_boxes(tmp_path: Path, capsys: pytest.CaptureFixture, kind: str):
    if kind == "coco":
        src = _coco(tmp_path / "src", [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 5, 10, 8],
                                        "segmentation": []}])
    elif kind == "yolo":
        src = _yolo(tmp_path / "src", [f"0 {9 / W} {9 / H} {10 / W} {8 / H}"])
    else:
        src = _cvat(tmp_path / "src", '<box label="pad" xtl="4" ytl="5" xbr="14" ybr="13" z_order="0"/>')
    assert _run(kind, src, tmp_path / "ds") == 1
    assert "boxes and no masks" in capsys.readouterr().err and not (tmp_path / "ds").exists()
    assert _run(kind, src, tmp_path / "ds", "--boxes-as-masks") == 0
    mask = read_mask(DatasetLayout(tmp_path / "ds").mask_path("p0"))
    assert (mask == 1).sum() == 80 and mask[5:13, 4:14].min() == 1  # the 10 x 8 box, exactly


def test_cvat_polygon_with_two_points_is_named(tmp_path: Path, capsys: pytest.CaptureFixture):
    shapes = ('<polygon label="pad" z_order="0" points="4,4;20,4;20,18;4,18"/>'
              '<polygon label="trace" z_order="0" points="1,1;9,9"/>')
    assert _run("cvat", _cvat(tmp_path / "cvat", shapes), tmp_path / "ds") == 0
    err = capsys.readouterr().err
    assert "dropped: p0.png: <polygon> #1 (trace): 2 point(s): a polygon needs 3 or more" in err


def test_each_warning_is_printed_once(tmp_path: Path, capsys: pytest.CaptureFixture):
    shapes = '<polygon label="pad" z_order="0" points="4,4;20,4;20,18;4,18"/><polyline label="trace" points="1,1;9,9"/>'
    assert _run("cvat", _cvat(tmp_path / "cvat", shapes), tmp_path / "ds") == 0
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert out.count("<polyline> #1 (trace)") == 1


def test_exif_rotated_photos_import_validate_and_train_in_one_orientation(tmp_path: Path):
    from PIL import Image

    from pcbseg.data.layout import read_image
    from pcbseg.data.validate import validate_dataset

    folder = tmp_path / "coco"
    folder.mkdir()
    stored = np.zeros((30, 40, 3), np.uint8)  # 40 wide as stored; EXIF says: turn 90° clockwise to view
    stored[:, :10] = 255  # the left band on disk is the top band on screen
    exif = Image.Exif()
    exif[0x0112] = 6
    for name in ("phone.jpg", "other.jpg"):
        Image.fromarray(stored).save(folder / name, exif=exif.tobytes(), quality=95)
    top_band = [[0, 0], [30, 0], [30, 10], [0, 10]]  # annotated as the photo is seen: 30 wide, 40 high
    doc = {"images": [{"id": i, "file_name": n, "width": 30, "height": 40} for i, n in ((1, "phone.jpg"), (2, "other.jpg"))],
           "annotations": [{"id": i, "image_id": i, "category_id": 1, "segmentation": [_flat(top_band)]} for i in (1, 2)],
           "categories": [{"id": 1, "name": "pad"}]}
    (folder / "a.json").write_text(json.dumps(doc))
    out = tmp_path / "ds"
    assert import_main(["coco", str(folder / "a.json"), "--out", str(out), "--classes", "background,pad",
                        "--valid-pct", "0.5"]) == 0
    assert validate_dataset(out) == []
    image, mask = read_image(out / "images" / "phone.jpg"), read_mask(DatasetLayout(out).mask_path("phone"))
    assert image.shape[:2] == mask.shape == (40, 30)
    assert image[mask == 1].mean() > 200 and image[mask == 0].mean() < 60  # the labels sit on the bright band


def _coco_file(path: Path, names: list[str]) -> Path:
    _images(path.parent, names)
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "segmentation": [_flat(POLYGONS["pad"])]}
            for i in range(len(names))]
    doc = {"images": [{"id": i + 1, "file_name": n, "width": W, "height": H} for i, n in enumerate(names)],
           "annotations": anns, "categories": [{"id": 1, "name": "pad"}]}
    path.write_text(json.dumps(doc))
    return path


def test_coco_split_by_file_is_kept_or_redrawn_on_request(tmp_path: Path, capsys: pytest.CaptureFixture):
    from pcbseg.data.splits import read_splits

    folder = tmp_path / "export"
    train = _coco_file(folder / "train.json", ["t0.png", "t1.png", "t2.png"])
    val = _coco_file(folder / "instances_val2017.json", ["v0.png"])
    assert import_main(["coco", str(train), str(val), "--out", str(tmp_path / "kept"), "--classes", "background,pad"]) == 0
    assert {r.id: r.split for r in read_splits(tmp_path / "kept" / "splits.csv")} == {
        "t0": "train", "t1": "train", "t2": "train", "v0": "val"}
    assert import_main(["coco", str(train), str(val), "--out", str(tmp_path / "redrawn"), "--classes", "background,pad",
                        "--redraw-split", "--valid-pct", "0.75", "--seed", "1"]) == 0
    assert {r.split for r in read_splits(tmp_path / "redrawn" / "splits.csv") if r.id.startswith("t")} != {"train"}
    plain = _coco_file(tmp_path / "plain" / "annotations.json", ["p0.png", "p1.png"])
    assert _run("coco", plain, tmp_path / "nosplit", "--keep-split") == 1
    assert "--keep-split" in capsys.readouterr().err


def test_same_file_names_from_two_exports_stay_apart(tmp_path: Path):
    from pcbseg.data.splits import read_splits

    a = _coco_file(tmp_path / "lab_a" / "annotations.json", ["10.png", "11.png"])
    b = _coco_file(tmp_path / "lab_b" / "annotations.json", ["10.png", "12.png"])
    assert import_main(["coco", str(a), str(b), "--out", str(tmp_path / "ds"), "--classes", "background,pad"]) == 0
    rows = {r.id: r.group for r in read_splits(tmp_path / "ds" / "splits.csv")}
    assert rows["lab_a__10"] == "lab_a/10" and rows["lab_b__10"] == "lab_b/10" and len(rows) == 4


def test_cvat_project_subsets_are_kept(tmp_path: Path):
    from pcbseg.data.splits import read_splits

    folder = tmp_path / "cvat"
    _images(folder / "images", ["p0.png", "p1.png"])
    pad = '<polygon label="pad" z_order="0" points="4,4;20,4;20,18;4,18"/>'
    xml = ('<?xml version="1.0"?><annotations><version>1.1</version>'
           f'<image id="0" name="p0.png" width="{W}" height="{H}" subset="Train">{pad}</image>'
           f'<image id="1" name="p1.png" width="{W}" height="{H}" subset="Validation">{pad}</image></annotations>')
    (folder / "annotations.xml").write_text(xml)
    assert _run("cvat", folder / "annotations.xml", tmp_path / "ds") == 0
    assert {r.id: r.split for r in read_splits(tmp_path / "ds" / "splits.csv")} == {"p0": "train", "p1": "val"}
