"""Evaluation metrics against hand-computed confusion matrices; pcbseg-eval reports; pcbseg-compare."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cli_runner import run_cli
from pcbseg.cli.compare import main as compare_main
from pcbseg.evaluate import Evaluation, boundary
from pcbseg.metrics import scores_from_confusion


def test_scores_match_a_hand_computed_confusion_matrix():
    # rows: truth, columns: prediction
    cm = np.array([[50, 10, 0],
                   [5, 30, 5],
                   [0, 0, 0]])
    s = scores_from_confusion(cm)
    # class 0: tp 50, fp 5, fn 10 -> IoU 50/65, Dice 100/115, precision 50/55, recall 50/60
    assert s["iou"][0] == pytest.approx(50 / 65) and s["dice"][0] == pytest.approx(100 / 115)
    assert s["precision"][0] == pytest.approx(50 / 55) and s["recall"][0] == pytest.approx(50 / 60)
    # class 1: tp 30, fp 10, fn 10 -> IoU 30/50; class 2: predicted 5 times, never true -> IoU 0, recall undefined
    assert s["iou"][1] == pytest.approx(0.6)
    assert s["iou"][2] == 0 and s["precision"][2] == 0 and np.isnan(s["recall"][2])


def test_evaluation_accumulates_confusion_and_ignores_255():
    ev = Evaluation(["bg", "fg", "absent"], ignore_index=255, boundary_px=1)
    target = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [255, 255, 1, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]])
    ev.add("x", pred, target)
    m = ev.metrics()
    assert m["confusion_matrix"] == [[3, 1, 0], [1, 5, 0], [0, 0, 0]]
    assert m["per_class"]["absent"]["iou"] is None and m["mIoU_over"] == ["bg", "fg"]
    assert m["per_class"]["bg"]["iou"] == pytest.approx(3 / 5) and m["per_class"]["fg"]["iou"] == pytest.approx(5 / 7)
    assert m["mIoU"] == pytest.approx((3 / 5 + 5 / 7) / 2)
    assert m["pixel_error_rate"] == pytest.approx(2 / 10)
    assert m["per_image"][0]["mIoU"] == pytest.approx(m["mIoU"])


def test_boundary_iou_is_stricter_than_iou_on_thin_errors():
    target = np.zeros((40, 40), np.int64)
    target[10:30, 10:30] = 1
    shifted = np.roll(target, 2, axis=1)  # a 2-px shift: IoU stays high, the boundary band suffers
    ev = Evaluation(["bg", "fg"], boundary_px=2)
    ev.add("a", shifted, target)
    fg = ev.metrics()["per_class"]["fg"]
    assert fg["iou"] > 0.8 and fg["boundary_iou"] < fg["iou"]
    same = Evaluation(["bg", "fg"], boundary_px=2)
    same.add("b", target, target)
    assert same.metrics()["per_class"]["fg"]["boundary_iou"] == 1.0


def test_boundary_band_is_inside_the_region_and_ignores_the_image_border():
    m = np.zeros((10, 10), bool)
    m[:, :5] = True  # touches three image borders
    band = boundary(m, 1)
    assert band[:, 4].all() and not band[:, :4].any() and not band[:, 5:].any()


def _eval(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_cli("pcbseg.cli.eval", *overrides, cwd=cwd)


def test_eval_writes_metrics_and_a_self_contained_report(tmp_path: Path, checkpoint: Path):
    result = _eval(tmp_path, f"ckpt_path={checkpoint}", "tile=64", "overlap=16", "hydra.run.dir=ev", "num_show=2", "top_losses=2")
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "ev"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mIoU", "pixel_error_rate", "per_class", "confusion_matrix", "classes", "per_image"):
        assert key in metrics
    assert set(metrics["per_class"]["trace"]) >= {"iou", "dice", "precision", "recall", "boundary_iou"}
    n = len(metrics["classes"])
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (n, n) and cm.sum() == metrics["num_pixels"] > 0
    assert metrics["num_images"] == 2  # the session dataset's val split
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    assert not re.search(r"""(src|href)=["'](?!data:)""", page), "the HTML must not load anything from outside"
    md = (out / "report.md").read_text()
    for png in ("confusion_matrix.png", "per_class_iou.png", "show_results.png", "top_losses.png"):
        assert png in md and (out / png).stat().st_size > 1000
    assert str(checkpoint) in md and "max_epochs" in md  # the checkpoint and the run's config
    # beside the model's error, what always predicting the most frequent class would get
    majority = 1 - cm.sum(1).max() / cm.sum()
    assert metrics["majority_pixel_error_rate"] == pytest.approx(majority)
    assert f"always the most frequent class: {majority:.3f}" in md


def test_eval_at_another_scale_still_scores_every_pixel_at_full_resolution(tmp_path: Path, checkpoint: Path):
    full = _eval(tmp_path, f"ckpt_path={checkpoint}", "hydra.run.dir=full", "num_show=0", "top_losses=0")
    half = _eval(tmp_path, f"ckpt_path={checkpoint}", "scale=0.5", "hydra.run.dir=half", "num_show=0", "top_losses=0")
    assert full.returncode == 0 and half.returncode == 0, half.stderr[-3000:]
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("full", "half"))
    assert a["tiling"]["scale"] == 1.0 and b["tiling"]["scale"] == 0.5
    assert a["num_pixels"] == b["num_pixels"]  # the prediction comes back at the photo's size
    assert a["confusion_matrix"] != b["confusion_matrix"]  # and it was made from half the pixels


def test_eval_compares_several_checkpoints(tmp_path: Path, checkpoint: Path):
    result = _eval(tmp_path, f"ckpt_path=[{checkpoint},{checkpoint}]", "tile=64", "overlap=16", "hydra.run.dir=cmp",
                   "num_show=1", "top_losses=1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (tmp_path / "cmp" / "compare.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].split(",")[1] == rows[2].split(",")[1]
    assert len(list((tmp_path / "cmp").glob("*/report.html"))) == 2


def test_eval_on_a_missing_split_is_a_clear_error(tmp_path: Path, checkpoint: Path):
    result = _eval(tmp_path, f"ckpt_path={checkpoint}", "split=test", "hydra.run.dir=none")
    assert result.returncode == 1 and "no image in the 'test' split" in result.stdout + result.stderr


def test_compare_cli_reads_train_runs(tmp_path: Path, trained_run: Path):
    assert compare_main([str(trained_run), str(trained_run), "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "compare.png").stat().st_size > 1000
    assert compare_main([str(tmp_path), "--out", str(tmp_path / "d")]) == 1
