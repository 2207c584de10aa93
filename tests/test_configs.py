"""Every shipped config composes with the real defaults, as a user would select it."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pcbseg.config import compose

CONF = Path(__file__).resolve().parents[1] / "conf"


def _names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_default_train_config():
    cfg = compose("train")
    assert cfg.data.root.endswith("data/synthetic") and cfg.model.encoder == "tu-tf_efficientnet_lite0"
    assert cfg.model.arch == "unet" and cfg.trainer.accelerator == "cpu" and cfg.model.weights == "imagenet"
    assert cfg.callbacks.model_checkpoint.monitor == "val/mIoU" == cfg.callbacks.early_stopping.monitor


@pytest.mark.parametrize("group", ["model", "trainer", "logger", "debug", "experiment", "augment", "data"])
def test_every_option_composes(group: str):
    names = _names(group)
    assert names
    for name in names:
        extra = ["data.root=/tmp/x"] if group == "data" and name == "folder" else []
        cfg = compose("train", [f"{group}={name}", "paths.output_dir=/tmp/out", *extra])
        OmegaConf.to_container(cfg.model, resolve=True)
        OmegaConf.to_container(cfg.trainer, resolve=True)


@pytest.mark.parametrize("name", _names("model"))
def test_model_configs_build_their_architecture(name: str):
    cfg = compose("train", [f"model={name}", "model.weights=null"])
    module = instantiate(cfg.model, num_classes=7)
    assert module.hparams.arch == name


def test_trainer_configs_set_what_they_promise():
    assert compose("train", ["trainer=gpu"]).trainer.precision == "16-mixed"
    ddp = compose("train", ["trainer=ddp"]).trainer
    assert ddp.strategy == "ddp" and "num_nodes" in ddp
    sim = compose("train", ["trainer=ddp_sim"]).trainer
    assert sim.accelerator == "cpu" and sim.devices == 2


def test_common_overrides_reach_their_targets():
    cfg = compose("train", ["seed=7", "data.root=/data/x", "data.batch_size=3", "trainer.max_epochs=2"])
    assert (cfg.seed, cfg.data.root, cfg.data.batch_size, cfg.trainer.max_epochs) == (7, "/data/x", 3, 2)


def test_pcbseg_synth_defaults_make_the_set_data_synthetic_expects():
    synth, data = compose("synth"), compose("train").data
    assert synth.out == data.root
    for key, value in data.synth.items():
        if key != "workers":
            assert synth[key] == value, f"pcbseg-synth {key}={synth[key]} but data=synthetic wants {value}"


def test_every_package_ships_with_a_plain_pip_install():
    """pyproject lists packages by hand (conf/ is mapped into pcbseg.conf): a new subpackage must be listed."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    repo = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    src = repo / "src"
    found = {".".join(p.parent.relative_to(src).parts) for p in (src / "pcbseg").rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
