import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from pcbseg.config import compose
from pcbseg.data.datamodule import PCBDataModule
from pcbseg.data.dataset import reflect_pad
from pcbseg.data.layout import DatasetError, read_mask
from pcbseg.data.splits import read_splits


def _dm(root: Path, *overrides: str) -> PCBDataModule:
    cfg = compose("synth", ["+data=folder", f"data.root={root}", "data.num_workers=0", *overrides])
    return instantiate(cfg.data)


def test_loaders_follow_splits_csv(dataset: Path):
    dm = _dm(dataset, "data.batch_size=2", "data.crop_size=64")
    dm.prepare_data()
    dm.setup("fit")
    rows = read_splits(dataset / "splits.csv")
    val = sorted(r.id for r in rows if r.split == "val")
    seen_val = [i for b in dm.val_dataloader() for i in b["id"]]
    assert sorted(seen_val) == val and val
    seen_train = {i for b in dm.train_dataloader() for i in b["id"]}
    assert seen_train.isdisjoint(val)


def test_train_batches_are_random_crops_val_batches_are_whole_padded_images(dataset: Path):
    dm = _dm(dataset, "data.batch_size=3", "data.crop_size=64", "data.pad_divisor=32")
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (3, 64, 64) and batch["mask"].dtype == torch.int64
    vb = next(iter(dm.val_dataloader()))
    assert vb["image"].shape[-2:] == (96, 96)  # 96 is a multiple of 32: whole image, no padding
    truth = read_mask(dataset / "masks" / f"{vb['id'][0]}.png")
    assert np.array_equal(vb["mask"][0].numpy(), truth)


def test_padding_is_ignored_in_the_mask(dataset: Path):
    dm = _dm(dataset, "data.pad_divisor=64", "data.crop_size=128")
    dm.prepare_data()
    dm.setup("fit")
    vb = next(iter(dm.val_dataloader()))
    assert vb["image"].shape[-2:] == (128, 128)
    assert (vb["mask"][:, 96:, :] == 255).all() and (vb["mask"][:, :, 96:] == 255).all()
    # the val images are mirrored out to the stride, as the predictor pads them: no black margin
    mirrored = vb["image"][:, :, 63:95, :96].flip(2)  # rows 94 down to 63, as np.pad "reflect" orders them
    assert torch.equal(vb["image"][:, :, 96:, :96], mirrored)


@pytest.mark.parametrize("jitter", [None, "[0.8,1.25]"])
def test_crops_larger_than_the_image_mirror_image_and_mask_alike(dataset: Path, jitter: str | None):
    """An image whose red channel encodes its class: after padding and cropping, every pixel still agrees."""
    over = [f"data.scale_jitter={jitter}"] if jitter else []
    dm = _dm(dataset, "data.crop_size=128", *over)
    dm.prepare_data()
    dm.setup("fit")
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 7, (40, 70)).astype(np.uint8)
    mask[:, :5] = 3  # a stripe on one edge: a margin of any single colour cannot fake its mirror
    image = np.stack([mask * 30 + 20, rng.integers(0, 255, mask.shape), np.full_like(mask, 9)], -1).astype(np.uint8)
    transform = dm._train_transform()
    for _ in range(5):
        out = transform(image=image, mask=mask)
        img, msk = out["image"], out["mask"]
        assert img.shape[:2] == msk.shape == (128, 128)
        if jitter is None:  # no resampling: every pixel is a copy of one source pixel, with its class
            assert (img[..., 0] == msk.astype(np.int64) * 30 + 20).all()
        assert (img[..., 2] > 0).all()  # no black margin anywhere
        assert (msk != 255).all()  # mirrored labels are true labels of the mirrored pixels


def test_reflect_pad_mirrors_even_past_the_image_size():
    img = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    out = reflect_pad(img, 9, 5)
    assert out.shape == (2, 12, 9)
    ref = np.pad(img.numpy(), ((0, 0), (0, 9), (0, 5)), mode="reflect")
    assert np.array_equal(out.numpy(), ref)
    one = reflect_pad(torch.ones(3, 1, 5), 4, 0)  # a single row has no mirror: its edge repeats
    assert one.shape == (3, 5, 5) and (one == 1).all()


def test_images_come_in_zero_one_and_the_model_normalises_them(dataset: Path):
    from pcbseg.models.module import SegmentationModule

    dm = _dm(dataset)
    dm.prepare_data()
    dm.setup("fit")
    img = next(iter(dm.val_dataloader()))["image"]
    assert img.min() >= 0 and img.max() <= 1 and img.max() > 0.5
    model = SegmentationModule(weights=None, num_classes=7, mean=(0.2, 0.3, 0.4), std=(0.5, 0.6, 0.7)).eval()
    x = img[:1, :, :64, :64]
    expected = model.model((x - torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.6, 0.7]).view(1, 3, 1, 1))
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_crop_must_fit_the_encoder_stride(dataset: Path):
    with pytest.raises(Exception, match="multiple of pad_divisor=32"):  # Hydra wraps the ValueError
        _dm(dataset, "data.crop_size=48")


def test_val_tiles_cover_each_image(dataset: Path):
    dm = _dm(dataset, "data.val_tile=64", "data.batch_size=4")
    dm.prepare_data()
    dm.setup("fit")
    n_val = len(dm.split_ids["val"])
    tiles = [b for b in dm.val_dataloader()]
    assert sum(len(b["id"]) for b in tiles) == n_val * 4  # 96 px -> 2x2 tiles of 64
    assert all(b["image"].shape[-2:] == (64, 64) for b in tiles)


def test_augment_pipeline_is_applied_to_training_only(dataset: Path):
    cfg = compose("synth", ["+data=folder", f"data.root={dataset}", "data.num_workers=0", "+augment=heavy"])
    dm = instantiate(cfg.data, augment=instantiate(cfg.augment))
    dm.prepare_data()
    dm.setup("fit")
    assert "Affine" in repr(dm.datasets["train"].transform)
    assert "Affine" not in repr(dm.datasets["val"].transform)


def test_synthetic_config_generates_once_then_reuses(tmp_path: Path):
    overrides = [f"paths.data_dir={tmp_path}", "data.synth.num_boards=5", "data.synth.size=64", "data.num_workers=0"]
    cfg = compose("synth", ["+data=synthetic", *overrides])
    assert cfg.data.root == f"{tmp_path}/synthetic"
    dm = instantiate(cfg.data)
    dm.prepare_data()
    made = (tmp_path / "synthetic" / "images" / "board_00000.png").stat().st_mtime_ns
    instantiate(cfg.data).prepare_data()
    assert (tmp_path / "synthetic" / "images" / "board_00000.png").stat().st_mtime_ns == made
    assert json.loads((tmp_path / "synthetic" / "synth.json").read_text())["num_boards"] == 5
    other = instantiate(compose("synth", ["+data=synthetic", *overrides, "data.synth.num_boards=9"]).data)
    with pytest.raises(DatasetError, match="num_boards: made with 5, asked 9"):
        other.prepare_data()


def test_regenerate_splits_happens_once_and_only_when_asked(dataset: Path):
    before = (dataset / "splits.csv").read_text()
    _dm(dataset, "data.split_seed=123", "data.valid_pct=0.5").prepare_data()
    assert (dataset / "splits.csv").read_text() == before
    dm = _dm(dataset, "data.split_seed=123", "data.valid_pct=0.5", "data.regenerate_splits=true")
    dm.prepare_data()
    after = (dataset / "splits.csv").read_text()
    assert after != before and len(list(dataset.glob("splits.csv.bak-*"))) == 1
    dm.prepare_data()
    assert (dataset / "splits.csv").read_text() == after


def test_batches_do_not_depend_on_worker_count_and_change_each_epoch(synth_root: Path):
    import albumentations as A

    def epochs(workers: int) -> list[list[torch.Tensor]]:
        dm = PCBDataModule(synth_root, batch_size=2, crop_size=64, num_workers=workers, seed=3,
                           augment=[A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.5)])
        dm.setup("fit")
        loader = dm.train_dataloader()
        out = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            out.append([b["image"] for b in loader])
        return out

    serial, parallel = epochs(0), epochs(2)
    for a, b in zip(serial, parallel, strict=True):
        assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(serial[0], serial[1], strict=True))


def test_the_image_cache_never_exceeds_its_bound_and_serves_identical_pairs(synth_root: Path):
    from pcbseg.data.dataset import SegmentationDataset

    ids = sorted(p.stem for p in (synth_root / "images").iterdir())
    pair_bytes = 96 * 96 * 4  # RGB + mask of one 96 px board
    ds = SegmentationDataset(synth_root, ids, cache_bytes=int(pair_bytes * 2.5))
    for _ in range(2):
        for i in range(len(ds)):
            image, mask = ds.load(i)
            assert ds.cache.nbytes <= ds.cache.max_bytes and len(ds.cache) <= 2
    assert ds.cache.hits == 0  # a cyclic scan through more than fits: every read decoded
    image, mask = ds.load(len(ds) - 1)  # the most recent one is held
    assert ds.cache.hits == 1 and not image.flags.writeable
    fresh = SegmentationDataset(synth_root, ids)
    assert np.array_equal(image, fresh.load(len(ds) - 1)[0]) and np.array_equal(mask, fresh.load(len(ds) - 1)[1])
    assert len(fresh.cache) == 0  # no bound, no cache


def test_the_cache_bound_is_shared_out_among_loader_workers(dataset: Path):
    dm = _dm(dataset, "data.cache_mb=8", "data.num_workers=2")
    dm.prepare_data()
    dm.setup("fit")
    assert dm.datasets["train"].cache.max_bytes == 4 * 2**20


def test_class_pixel_counts_sum_the_train_masks_or_an_even_sample_of_them(dataset: Path):
    dm = _dm(dataset)
    dm.prepare_data()
    dm.setup("fit")
    n = dm.num_classes
    train = sorted(r.id for r in read_splits(dataset / "splits.csv") if r.split == "train")
    ids = dm.datasets["train"].ids
    assert sorted(ids) == train and len(ids) >= 3
    masks = [read_mask(dataset / "masks" / f"{i}.png") for i in ids]
    whole = np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=256)[:n]
    assert dm.class_pixel_counts() == whole.tolist()
    # Two masks stand for the split: the first and the last, nothing in between.
    ends = np.bincount(np.concatenate([masks[0].ravel(), masks[-1].ravel()]), minlength=256)[:n]
    assert dm.class_pixel_counts(max_images=2) == ends.tolist()


def test_scale_resizes_images_and_maps_masks_by_nearest_neighbour(dataset: Path):
    dm = _dm(dataset, "data.scale=0.5", "data.crop_size=32", "data.batch_size=2")
    dm.prepare_data()
    dm.setup("fit")
    vb = next(iter(dm.val_dataloader()))
    assert vb["image"].shape[-2:] == (64, 64)  # 96 px boards at 0.5 are 48 px, padded to the stride
    truth = read_mask(dataset / "masks" / f"{vb['id'][0]}.png")
    small = vb["mask"][0, :48, :48].numpy()
    assert set(np.unique(small)) <= set(np.unique(truth))  # no blended ids
    assert np.array_equal(small, truth[::2, ::2][:48, :48]) or (small == truth[::2, ::2]).mean() > 0.9
    assert (vb["mask"][0, 48:] == 255).all()  # padding is ignore


def test_scale_jitter_zooms_training_crops_with_masks_by_nearest_neighbour(dataset: Path):
    """A zoom of exactly 2 turns each source pixel into a 2x2 block: the mask is never blended."""
    dm = _dm(dataset, "data.scale_jitter=[2.0,2.0]", "data.crop_size=64", "data.batch_size=4")
    dm.prepare_data()
    dm.setup("fit")
    masks = next(iter(dm.train_dataloader()))["mask"].numpy()
    assert masks.shape == (4, 64, 64)
    blocks = masks[:, ::2, ::2].repeat(2, 1).repeat(2, 2)
    assert np.array_equal(masks, blocks)
    ids = set(np.unique(masks)) - {255}
    truth = set().union(*(np.unique(read_mask(f)) for f in (dataset / "masks").iterdir()))
    assert ids <= truth and len(ids) > 1


def test_scale_jitter_and_px_per_mm_are_checked_and_recorded_by_the_model(dataset: Path):
    from pcbseg.api import build

    with pytest.raises(ValueError, match="scale_jitter"):
        PCBDataModule(dataset, scale_jitter=[1.5, 0.5])
    with pytest.raises(ValueError, match="px_per_mm"):
        PCBDataModule(dataset, px_per_mm=-3)
    _, model = build(["data=folder", f"data.root={dataset}", "data.num_workers=0", "model.weights=null",
                      "data.scale=0.5", "data.px_per_mm=20", "data.scale_jitter=[0.8,1.25]"])
    assert model.hparams.input_px_per_mm == 10.0 and model.hparams.input_scale_jitter == [0.8, 1.25]


def test_loader_workers_auto_follows_the_cores():
    from pcbseg.hardware import loader_workers

    assert loader_workers("auto", cores=2) == 0 and loader_workers("auto", cores=16) >= 2
    assert loader_workers(3) == 3
    with pytest.raises(ValueError, match="num_workers"):
        loader_workers(-1)


def test_source_weights_set_each_sources_share_of_training_samples(tmp_path: Path):
    from pcbseg.data.merge import merge_datasets
    from pcbseg.data.synth import write_dataset

    big = write_dataset(tmp_path / "sim", num_boards=12, size=64, seed=1, workers=1, valid_pct=0.25)
    small = write_dataset(tmp_path / "photos", num_boards=4, size=64, seed=2, workers=1, valid_pct=0.25)
    merged = merge_datasets([big, small], tmp_path / "both").root
    dm = _dm(merged, "data.source_weights={sim: 1, photos: 3}", "data.crop_size=64")
    dm.prepare_data()
    dm.setup("fit")
    train = dm.datasets["train"]
    sampler = dm.train_dataloader().sampler
    drawn = [train.ids[i].split("__")[0] for epoch in range(40) for i, _ in (sampler.set_epoch(epoch) or sampler)]
    assert len(drawn) == 40 * len(train) and abs(drawn.count("photos") / len(drawn) - 0.75) < 0.05
    plain = _dm(merged, "data.crop_size=64")
    plain.prepare_data()
    plain.setup("fit")
    share = [i.split("__")[0] for i in plain.datasets["train"].ids].count("photos") / len(plain.datasets["train"])
    assert share < 0.4  # without weights, the small source keeps its small share
    bad = _dm(merged, "data.source_weights={sims: 1}")
    with pytest.raises(DatasetError, match="sims"):
        bad.setup("fit")


def test_val_batches_on_cpu_hold_at_most_eval_batch_px(tmp_path: Path):
    """Whole images of 640x480 go two to a batch on CPU; small ones keep batch_size; a given size wins."""
    from pcbseg.data import datamodule as dmod
    from pcbseg.data.layout import write_image, write_mask
    from pcbseg.data.splits import SplitRow, write_splits
    from pcbseg.taxonomy import taxonomy_from_names

    def dataset(name: str, h: int, w: int) -> Path:
        root = tmp_path / name
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        taxonomy_from_names(["background", "pad"], name="two").save(root / "classes.yaml")
        rows = []
        for k in range(6):
            write_image(root / "images" / f"i{k}.png", np.zeros((h, w, 3), np.uint8))
            write_mask(root / "masks" / f"i{k}.png", (np.arange(w)[None].repeat(h, 0) % 2).astype(np.uint8))
            rows.append(SplitRow(f"i{k}", "val" if k < 3 else "train", f"i{k}"))
        write_splits(root / "splits.csv", rows)
        return root

    def batches(root: Path, **kw: object) -> list[int]:
        dm = dmod.PCBDataModule(root=str(root), batch_size=8, num_workers=0, crop_size=64, **kw)
        dm.prepare_data()
        dm.setup("fit")
        return [len(b["image"]) for b in dm.val_dataloader()]

    assert dmod.EVAL_BATCH_PX // (480 * 640) == 2
    frames = dataset("frames", 480, 640)
    assert batches(frames) == [2, 1]
    assert batches(frames, val_batch_size=3) == [3]
    assert batches(frames, scale=0.5) == [3]  # 240 x 320: up to 8 would fit
    assert batches(dataset("small", 96, 96)) == [3]
