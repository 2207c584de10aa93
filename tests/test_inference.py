"""Tiled prediction: seams, every image kind, TTA, memory shape; pcbseg-predict and pcbseg-export."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from cli_runner import run_cli
from pcbseg.data.synth import render_board
from pcbseg.inference import TiledPredictor, no_board_note, tile_starts, window
from pcbseg.models.module import SegmentationModule


@pytest.fixture(scope="module")
def net() -> SegmentationModule:
    torch.manual_seed(0)
    return SegmentationModule(weights="imagenet", num_classes=7).eval()


def test_tiles_cover_the_image_with_at_least_the_overlap():
    assert tile_starts(100, 512, 128) == [0]  # smaller than a tile: one (padded) tile
    for length in (512, 513, 1000, 4000):
        starts = tile_starts(length, 512, 128)
        assert starts[0] == 0 and starts[-1] + 512 == length  # the last tile ends at the border
        assert all(0 < b - a <= 512 - 128 for a, b in itertools.pairwise(starts))


def test_window_is_positive_and_peaks_in_the_centre():
    w = window(64)
    assert w.min() > 0 and w[32, 32] == w.max() and w[0, 0] == w.min()


def test_identity_network_round_trips_exactly():
    """A network that copies a one-hot input must give back that input, through tiles and blending."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (300, 410)).astype(np.uint8)
    image = (labels[..., None] == np.arange(3)).astype(np.uint8) * 255  # one-hot as RGB
    ident = torch.nn.Conv2d(3, 3, 1, bias=False)
    ident.weight.data = torch.eye(3).view(3, 3, 1, 1)
    pred = TiledPredictor(ident, 3, tile=128, overlap=32).predict(image, return_probs=True)
    assert np.array_equal(pred.mask, labels)
    assert pred.probs.shape == (3, 300, 410) and np.allclose(pred.probs.astype(np.float32).sum(0), 1, atol=1e-2)


def test_tiled_matches_whole_image_prediction():
    """With a receptive field well inside the overlap, tiling and blending must change nothing.

    (The real model's seams, where context differs between tile and whole image, are measured in
    scripts/bench/predict_tiled.py with a trained checkpoint.)
    """
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
                              torch.nn.ReLU(), torch.nn.Conv2d(8, 7, 3, padding=1)).eval()
    image, _ = render_board(1, size=320)  # a multiple of 32: the whole-image pass needs no padding
    pred = TiledPredictor(net, 7, tile=128, overlap=32)
    tiled, whole = pred.predict(image).mask, pred.predict_whole(image)
    assert (tiled == whole).mean() > 0.9999


def test_tta_equals_the_hand_inverted_average():
    """A random 5x5 convolution is not flip- or rotation-equivariant: only exact inversion gives this."""
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 4, 5, padding=2).eval()
    image, _ = render_board(4, size=64)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        expected = (net(x) + net(x.flip(-1)).flip(-1) + net(x.rot90(1, (-2, -1))).rot90(-1, (-2, -1))) / 3
    out = TiledPredictor(net, 4, tile=64, overlap=16, tta=["hflip", "rot90"]).predict(image, return_logits=True)
    assert np.allclose(out.logits, expected[0].numpy(), atol=1e-5)
    plain = TiledPredictor(net, 4, tile=64, overlap=16).predict(image, return_logits=True)
    assert not np.allclose(plain.logits, out.logits, atol=1e-3)


def test_tta_averages_and_keeps_shape(net: SegmentationModule):
    image, _ = render_board(2, size=160)
    plain = TiledPredictor(net, 7, tile=128, overlap=32).predict(image, return_logits=True)
    tta = TiledPredictor(net, 7, tile=128, overlap=32, tta=["hflip", "rot90"])
    out = tta.predict(image, return_logits=True)
    assert out.mask.shape == (160, 160) and not np.allclose(out.logits, plain.logits)
    with pytest.raises(ValueError, match="unknown TTA"):
        TiledPredictor(net, 7, tta=["shear"])


def _write_kinds(folder: Path) -> dict[str, tuple[int, int]]:
    """One file of every kind a user may hand us, and the (height, width) it should come out at."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb, _ = render_board(3, size=96)
    rgb = rgb[:80]  # not square, so a rotation shows
    cv2.imwrite(str(folder / "colour.png"), rgb[..., ::-1])
    cv2.imwrite(str(folder / "grey.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(folder / "rgba.png"), np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 200, np.uint8)]))
    cv2.imwrite(str(folder / "deep.png"), rgb[..., ::-1].astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.fromarray(rgb).save(folder / "upright.JPG", exif=exif)
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    return {"colour": (80, 96), "grey": (80, 96), "rgba": (80, 96), "deep": (80, 96), "upright": (96, 80)}


def _predict(cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_cli("pcbseg.cli.predict", *overrides, cwd=cwd)


def test_predict_handles_every_image_kind_and_skips_bad_files(tmp_path: Path, checkpoint: Path):
    expected = _write_kinds(tmp_path / "in")
    result = _predict(tmp_path, f"ckpt_path={checkpoint}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}",
                      "tile=64", "overlap=16", "save_probs=true")
    assert result.returncode == 0, result.stderr[-2000:]
    log = result.stdout + result.stderr
    assert "broken.png" in log and "skipped 1" in log
    for stem, shape in expected.items():
        mask = cv2.imread(str(tmp_path / "out" / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        assert mask is not None and mask.shape == shape and mask.max() < 7, stem
        assert (tmp_path / "out" / f"{stem}_overlay.jpg").is_file()
        assert (tmp_path / "out" / f"{stem}_prob_trace.png").is_file()
    # A second run refuses to replace the outputs and says so; nothing is lost.
    before = (tmp_path / "out" / "colour_mask.png").read_bytes()
    again = _predict(tmp_path, f"ckpt_path={checkpoint}", f"input={tmp_path / 'in' / 'colour.png'}",
                     f"output={tmp_path / 'out'}", "tile=64", "overlap=16")
    assert again.returncode == 1 and "exists" in again.stdout + again.stderr
    assert (tmp_path / "out" / "colour_mask.png").read_bytes() == before


def test_export_onnx_parity_and_onnx_backend(tmp_path: Path, checkpoint: Path):
    pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / "model.onnx"
    result = run_cli("pcbseg.cli.export", f"ckpt_path={checkpoint}", f"output={onnx_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(onnx_path.with_suffix(".onnx.json").read_text())
    assert report["max_abs_diff"] < 1e-3 and report["argmax_agreement"] > 0.999
    assert report["input_shape"][2:] != [256, 256]  # checked at another size than traced: dynamic H/W
    image, _ = render_board(5, size=96)
    cv2.imwrite(str(tmp_path / "board.png"), image[..., ::-1])
    for backend in ("torch", "onnx"):
        out = _predict(tmp_path, f"ckpt_path={checkpoint}", f"input={tmp_path / 'board.png'}", f"output={tmp_path / backend}",
                       "tile=64", "overlap=16", f"backend={backend}", f"onnx_path={onnx_path}",
                       "precision=32")  # parity of the two backends in the same arithmetic (ONNX runs float32)
        assert out.returncode == 0, out.stderr[-2000:]
    a = cv2.imread(str(tmp_path / "torch" / "board_mask.png"), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(tmp_path / "onnx" / "board_mask.png"), cv2.IMREAD_UNCHANGED)
    assert (a == b).mean() > 0.999


def test_onnx_parity_failure_is_reported_and_exits_1(tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("onnxruntime")
    from pcbseg import export
    from pcbseg.api import load_model

    original = export.OnnxForward.__call__
    monkeypatch.setattr(export.OnnxForward, "__call__", lambda self, x: original(self, x) + 0.01)  # a drifting runtime
    report = export.export_onnx(load_model(checkpoint), tmp_path / "drift.onnx")
    assert report["max_abs_diff"] == pytest.approx(0.01, abs=1e-3) and not export.parity_ok(report)
    monkeypatch.undo()  # the command's own runtime: a tolerance of 1e-12 is what fails it
    result = run_cli("pcbseg.cli.export", f"ckpt_path={checkpoint}", f"output={tmp_path / 'strict.onnx'}", "tolerance=1e-12",
                     cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "parity check failed" in out and "Traceback" not in out


def test_onnx_file_records_what_it_takes_and_old_exports_are_refused(tmp_path: Path, checkpoint: Path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from pcbseg import export
    from pcbseg.api import load_model

    model = load_model(checkpoint)
    path = tmp_path / "m.onnx"
    export.export_onnx(model, path)
    runner = export.OnnxForward(path)
    assert json.loads(runner.metadata["pcbseg_classes"]) == list(model.taxonomy.names)
    x = torch.rand(1, 3, 64, 96)  # raw RGB in [0, 1]: the graph normalises
    with torch.no_grad():
        assert torch.allclose(runner(x), model(x), atol=1e-3)
    bare = onnx.load(str(path))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "old.onnx"))
    with pytest.raises(ValueError, match="older pcbseg"):
        export.OnnxForward(tmp_path / "old.onnx")


def test_an_image_within_one_batch_of_tiles_goes_through_whole():
    """Up to batch_size x tile² pixels (padded to the stride) cost no more memory whole, and need no seams."""
    image, _ = render_board(5, size=160)
    image = np.ascontiguousarray(image[:150])  # 150 x 160: larger than a 64 px tile, padded to 160 x 160
    ident = torch.nn.Conv2d(3, 3, 1, bias=False)
    for max_whole in (None, 160 * 160, 160 * 160 - 1, 0):
        seen: list[tuple[int, ...]] = []
        TiledPredictor(lambda x, seen=seen: seen.append(tuple(x.shape)) or ident(x), 3, tile=64, overlap=16,
                       batch_size=25, max_whole_px=max_whole).predict(image)
        if max_whole is None or max_whole >= 160 * 160:
            assert seen == [(1, 3, 160, 160)], max_whole
        else:
            assert len(seen) > 1 and {shape[2:] for shape in seen} == {(64, 64)}, max_whole
    for bad in (-5, "abc", 2.5):
        with pytest.raises(ValueError, match="max_whole_px"):
            TiledPredictor(ident, 3, max_whole_px=bad)


def test_stripes_give_exactly_the_single_pass_result(net: SegmentationModule):
    image, _ = render_board(4, size=320)
    image = np.ascontiguousarray(np.concatenate([image, image[:, ::-1]], 1))  # 320 x 640
    one = TiledPredictor(net, 7, tile=128, overlap=32).predict(image, return_logits=True)
    striped = TiledPredictor(net, 7, tile=128, overlap=32, max_band_width=200)
    two = striped.predict(image, return_logits=True)
    assert np.array_equal(one.mask, two.mask)
    assert np.allclose(one.logits, two.logits, atol=1e-5)


def test_scale_predicts_at_the_training_scale_and_restores_the_photo_size():
    """A 1x1 identity network on a one-hot image: at scale 0.5 the result is the labels at full size again."""
    labels = np.zeros((120, 170), np.uint8)
    labels[20:80, 30:150] = 1
    labels[90:, :60] = 2  # regions of more than 2 px, so a half-size pass can keep them
    image = (labels[..., None] == np.arange(3)).astype(np.uint8) * 255
    ident = torch.nn.Conv2d(3, 3, 1, bias=False)
    ident.weight.data = torch.eye(3).view(3, 3, 1, 1)
    seen = []
    pred = TiledPredictor(lambda x: seen.append(x.shape) or ident(x), 3, tile=64, overlap=16, scale=0.5,
                          max_whole_px=0).predict(image, return_probs=True)
    assert pred.mask.shape == labels.shape and pred.probs.shape == (3, 120, 170)
    assert max(s[-1] for s in seen) == 64 and len(seen) < 6  # 60 x 85 px: a handful of 64 px tiles
    assert (pred.mask == labels).mean() > 0.98  # only boundary pixels may move by the resize


def test_model_predicts_at_the_scale_it_was_trained_at():
    m = SegmentationModule(weights=None, num_classes=3, input_scale=0.5).eval()
    assert m.predictor().scale == 0.5 and m.predictor(scale=1.0).scale == 1.0
    assert m.predict(np.zeros((70, 90, 3), np.uint8)).shape == (70, 90)


def test_px_per_mm_brings_photos_to_the_trained_px_per_mm_and_warns_far_outside(caplog: pytest.LogCaptureFixture):
    m = SegmentationModule(weights=None, num_classes=3, input_scale=0.5, input_px_per_mm=15.0,
                           input_scale_jitter=[0.8, 1.25]).eval()
    with caplog.at_level(logging.WARNING):
        assert m.predictor(px_per_mm=30).scale == 0.5 and m.predictor(px_per_mm=15).scale == 1.0
        assert m.predict(np.zeros((70, 90, 3), np.uint8), px_per_mm=45).shape == (70, 90)
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        assert m.predictor(px_per_mm=60, scale=1.0).scale == 1.0  # reaches the network at 60 px/mm
    assert "60 px/mm (given)" in caplog.text and "12-18.8 px/mm" in caplog.text
    bare = SegmentationModule(weights=None, num_classes=3, input_scale=0.5).eval()
    with pytest.raises(ValueError, match="scale="):
        bare.predictor(px_per_mm=30)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        bare.predictor(scale=2.0)  # 4 times the training zoom, the photo's px/mm assumed to be the data's
    assert "assuming the photo has the training images' px/mm" in caplog.text


def test_no_board_note_flags_blank_frames_but_no_board_photo(tmp_path: Path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:600, 0:800] / 800.0
    vignette = 230 - 60 * ((yy - 0.37) ** 2 + (xx - 0.5) ** 2)
    blank = np.clip(vignette[..., None] + rng.normal(0, 3, (600, 800, 3)), 0, 255).astype(np.uint8)
    assert "no board found" in no_board_note(blank)
    assert no_board_note(np.zeros((40, 50, 3), np.uint8)) and no_board_note(np.zeros((1, 1, 3), np.uint8))
    for seed in range(5):
        assert no_board_note(render_board(seed, size=128)[0]) is None
    photos = Path(__file__).resolve().parents[2] / "shared" / "data" / "board-photos"
    if photos.is_dir():  # every real board photo there is seen as one
        from pcbseg.data.layout import read_image

        shots = sorted(photos.glob("*/photos/*"))
        assert shots and [p.name for p in shots if no_board_note(read_image(p))] == []


def test_predict_gives_a_photo_with_no_board_an_all_background_mask_and_a_note(tmp_path: Path, checkpoint: Path):
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "wall.jpg"), np.full((150, 200, 3), 215, np.uint8))
    cv2.imwrite(str(tmp_path / "in" / "board.png"), render_board(2, size=96)[0][..., ::-1])
    result = _predict(tmp_path, f"ckpt_path={checkpoint}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}",
                      "tile=64", "overlap=16")
    assert result.returncode == 0, result.stderr[-2000:]
    log = result.stdout + result.stderr
    assert "wall.jpg: no board found" in log and "board.png: no board" not in log
    wall = cv2.imread(str(tmp_path / "out" / "wall_mask.png"), cv2.IMREAD_UNCHANGED)
    assert wall.shape == (150, 200) and (wall == 0).all()  # background is class 0 of the default classes
    assert (tmp_path / "out" / "board_mask.png").is_file()


def _bn_net(num_classes: int = 3) -> torch.nn.Sequential:
    """conv -> BatchNorm -> 1x1 head, with running statistics far from any real image's."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                              torch.nn.ReLU(), torch.nn.Conv2d(4, num_classes, 1)).eval()
    net[1].running_mean.fill_(0.5)
    net[1].running_var.fill_(3.0)
    return net


def test_adapt_bn_normalises_with_the_images_own_statistics_and_puts_the_models_back():
    image, _ = render_board(3, size=96)
    net = _bn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        feats = net[0](x)
    own = _bn_net()
    own[1].running_mean.copy_(feats.mean((0, 2, 3)))
    own[1].running_var.copy_(feats.var((0, 2, 3), unbiased=True))  # what BatchNorm keeps as its running variance
    with torch.no_grad():
        expected = own(x)[0]

    adapted = TiledPredictor(net, 3, tile=96, adapt_bn=1.0).predict(image, return_logits=True)
    assert np.allclose(adapted.logits, expected.numpy(), atol=1e-4)
    half = TiledPredictor(net, 3, tile=96, adapt_bn=0.5).predict(image, return_logits=True)
    plain = TiledPredictor(net, 3, tile=96).predict(image, return_logits=True)
    assert not np.allclose(half.logits, plain.logits, atol=1e-3) and not np.allclose(half.logits, adapted.logits, atol=1e-3)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the model's own statistics must come back"
    assert not net.training and net[1].momentum == 0.1


def test_adapt_bn_on_tiles_covers_the_image_once_and_restores_after_an_error():
    image, _ = render_board(4, size=160)
    net = _bn_net()
    seen: list[tuple[int, ...]] = []
    net.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    TiledPredictor(net, 3, tile=64, overlap=32, batch_size=4, max_whole_px=0, adapt_bn=1.0).predict(image)
    # statistics: tile_starts(160, 64, 0) = [0, 64, 96], 3 x 3 tiles; prediction: [0, 32, 64, 96], 4 x 4
    assert {s[2:] for s in seen} == {(64, 64)} and sum(s[0] for s in seen) == 9 + 16

    calls = {"n": 0}

    def fail_on_second(_m, _args):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("boom")

    net = _bn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.register_forward_pre_hook(fail_on_second)
    with pytest.raises(RuntimeError, match="boom"):
        TiledPredictor(net, 3, tile=96, adapt_bn=1.0).predict(render_board(3, size=96)[0])
    assert all(torch.equal(before[k], net.state_dict()[k]) for k in before) and not net[1].training


def test_adapt_bn_is_refused_where_it_cannot_work():
    for bad in (-0.1, 1.5, "yes", True):
        with pytest.raises(ValueError, match="adapt_bn"):
            TiledPredictor(_bn_net(), 3, adapt_bn=bad)
    with pytest.raises(ValueError, match="no BatchNorm"):
        TiledPredictor(torch.nn.Conv2d(3, 3, 1), 3, adapt_bn=0.5)
    with pytest.raises(ValueError, match="no BatchNorm"):
        TiledPredictor(lambda x: x, 3, adapt_bn=0.5)


def test_predict_adapts_batchnorm_per_photo_and_names_a_bad_setting(tmp_path: Path, checkpoint: Path):
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "board.png"), render_board(2, size=96)[0][..., ::-1])
    common = (f"ckpt_path={checkpoint}", f"input={tmp_path / 'in'}", "tile=64", "overlap=16", "save_overlay=false")
    result = _predict(tmp_path, *common, f"output={tmp_path / 'out'}", "adapt_bn=1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert cv2.imread(str(tmp_path / "out" / "board_mask.png"), cv2.IMREAD_UNCHANGED).shape == (96, 96)
    for bad, says in (("adapt_bn=2", "adapt_bn=2"), ("adapt_bn=0.5 backend=onnx", "needs backend=torch")):
        failed = _predict(tmp_path, *common, f"output={tmp_path / 'bad'}", *bad.split())
        log = failed.stdout + failed.stderr
        assert failed.returncode == 1 and says in log and "Traceback" not in log, log[-2000:]
        assert not (tmp_path / "bad" / "board_mask.png").exists()
