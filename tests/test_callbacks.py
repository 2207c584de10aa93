"""ValidationBudget: expensive validation passes are skipped, the run's last weights are always validated."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pcbseg.callbacks import ValidationBudget


class _Timed(L.LightningModule):
    """A linear model whose training and validation steps take at least the given seconds."""

    def __init__(self, train_s: float = 0.0, val_s: float = 0.0) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.train_s, self.val_s = train_s, val_s
        self.validated_at: list[tuple[int, int]] = []  # (epoch, global step) of each validation batch

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        time.sleep(self.train_s)
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        time.sleep(self.val_s)
        self.validated_at.append((self.current_epoch, self.global_step))
        self.log("val/loss", self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(module: _Timed, callback: ValidationBudget, **trainer_kw: object) -> L.Trainer:
    data = DataLoader(TensorDataset(torch.randn(16, 4)), batch_size=4)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[callback], **trainer_kw)
    trainer.fit(module, data, DataLoader(TensorDataset(torch.randn(4, 4)), batch_size=4))
    return trainer


def test_an_expensive_pass_runs_on_the_first_and_last_epochs_only():
    # a pass takes 0.5 s, an epoch of training a few ms: validating again would need 2 s of training
    module = _Timed(val_s=0.5)
    callback = ValidationBudget(max_share=0.25)
    trainer = _fit(module, callback, max_epochs=6)
    assert [epoch for epoch, _ in module.validated_at] == [0, 5]
    assert callback.skipped == [1, 2, 3, 4]
    assert trainer.limit_val_batches == 1.0, "the trainer is left as configured"


def test_a_cheap_pass_runs_every_epoch_and_null_always_validates():
    module = _Timed(train_s=0.05)  # an epoch trains 0.2 s; a pass takes a millisecond
    _fit(module, ValidationBudget(max_share=0.25), max_epochs=4)
    assert [epoch for epoch, _ in module.validated_at] == [0, 1, 2, 3]
    module = _Timed(val_s=0.5)
    _fit(module, ValidationBudget(max_share=None), max_epochs=3)
    assert [epoch for epoch, _ in module.validated_at] == [0, 1, 2]


def test_under_a_time_budget_the_final_weights_are_validated():
    module = _Timed(train_s=0.02, val_s=0.3)
    callback = ValidationBudget(max_share=0.25)
    trainer = _fit(module, callback, max_epochs=-1, max_time={"seconds": 4})
    assert callback.skipped, "some epochs should have gone unvalidated"
    assert module.validated_at[-1][1] == trainer.global_step, "the run ended on weights no validation saw"


def test_max_share_must_be_positive():
    for bad in (0, -1, "abc", True):
        with pytest.raises(ValueError, match="max_share"):
            ValidationBudget(max_share=bad)


def test_early_stopping_ignores_skipped_epochs_in_a_real_run(tmp_path: Path, synth_root: Path):
    from test_train import _run_in_process

    # patience 1: a stale score judged on a skipped epoch would stop the run after its second epoch
    summary, out = _run_in_process(tmp_path, synth_root, "trainer.max_epochs=4", "callbacks.val_budget.max_share=1e-9",
                                   "callbacks.early_stopping.patience=1")
    validated = sorted({int(r["epoch"]) for r in csv.DictReader((out / "metrics.csv").open()) if r.get("val/mIoU")})
    assert validated == [0, 3]
    assert summary["epochs"] == 4 and (out / "checkpoints" / "best.ckpt").is_file()
