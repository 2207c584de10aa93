"""Fine-tuning lives in the module: frozen encoder (BatchNorm too) and LR 0 for it, then both groups, by step."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, Dataset

from pcbseg.models.module import ConfigError, SegmentationModule


class _Boards(Dataset):
    def __init__(self, n: int = 8):
        g = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, 64, 64, generator=g)
        self.masks = torch.randint(0, 3, (n, 64, 64), generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "mask": self.masks[i]}


class _Record(Callback):
    def __init__(self):
        self.rows: list[tuple[int, float, float, bool, bool]] = []

    def on_before_optimizer_step(self, trainer, module, optimizer):  # the LR and state this step uses
        head, enc = (g["lr"] for g in trainer.optimizers[0].param_groups)
        bn = next(m for m in module.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
        grad = any(p.requires_grad for p in module.encoder.parameters())
        self.rows.append((trainer.global_step, head, enc, grad, bn.training))


def _fit(**trainer_kwargs) -> tuple[_Record, SegmentationModule, dict]:
    torch.manual_seed(0)
    module = SegmentationModule(weights=None, num_classes=3, freeze_epochs=1, lr=1e-3)
    before = {k: v.clone() for k, v in module.encoder.state_dict().items()}
    record = _Record()
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[record], **trainer_kwargs)
    trainer.fit(module, DataLoader(_Boards(8), batch_size=2))  # 4 steps an epoch
    return record, module, before


@pytest.mark.parametrize("budget", [{"max_epochs": 3}, {"max_epochs": -1, "max_steps": 12}])
def test_encoder_frozen_for_the_first_epoch_of_steps_then_trained(budget: dict):
    record, module, before = _fit(**budget)
    assert module.frozen_steps == 4 and len(record.rows) == 12
    frozen, thawed = record.rows[:4], record.rows[4:]
    assert all(enc == 0 and not grad and not bn for _, _, enc, grad, bn in frozen)
    assert all(enc > 0 and grad and bn for _, _, enc, grad, bn in thawed)
    # two cycles: the head's LR warms up and anneals in each phase
    heads = [h for _, h, *_ in record.rows]
    assert heads[0] < max(heads[:4]) and heads[3] < max(heads[:4])
    assert heads[4] < max(heads[4:]) and heads[-1] < 0.1 * max(heads[4:])
    # encoder LR is lr / encoder_lr_div at the second cycle's peak
    assert max(enc for _, _, enc, *_ in thawed) == pytest.approx(max(heads[4:]) / 10, rel=1e-6)
    after = module.encoder.state_dict()
    assert any(not torch.equal(after[k], before[k]) for k in before), "encoder never trained"


def test_frozen_phase_as_a_share_of_the_run():
    torch.manual_seed(0)
    module = SegmentationModule(weights=None, num_classes=3, freeze_epochs=1, freeze_pct=0.25)
    record = _Record()
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[record], max_steps=12, max_epochs=-1)
    trainer.fit(module, DataLoader(_Boards(8), batch_size=2))
    assert module.frozen_steps == 3  # a quarter of 12 steps, not the 4 of one epoch
    assert [enc == 0 for _, _, enc, *_ in record.rows] == [True] * 3 + [False] * 9


def test_frozen_encoder_and_its_batchnorm_statistics_do_not_move():
    _, module, before = _fit(max_steps=4)
    after = module.encoder.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("setting, value, words", [
    ("lr", -1.0, "positive"), ("lr", float("nan"), "positive"), ("warmup_pct", 1.5, "[0, 1)"),
    ("freeze_epochs", -1, ">= 0"), ("schedule", "linear", "onecycle"), ("arch", "transformer9000", "unet"),
    ("tile", 100, "multiple of 32"), ("weight_decay", -0.1, ">= 0"), ("freeze_pct", 1.0, "null or in"),
])
def test_invalid_hyperparameters_are_named(setting: str, value, words: str):
    with pytest.raises(ConfigError, match=rf"model\.{setting}=.*{words}".replace("[", r"\[").replace(")", r"\)")):
        SegmentationModule(weights=None, num_classes=3, **{setting: value})


@pytest.mark.parametrize("freeze", [{"freeze_pct": 0.2}, {"freeze_epochs": 1}])
def test_time_budget_schedule_spans_the_steps_that_fit_and_reaches_its_final_lr(freeze: dict):
    torch.manual_seed(0)
    module = SegmentationModule(weights=None, num_classes=3, lr=1e-3, **freeze)
    record = _Record()
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[record], max_epochs=-1, max_time={"seconds": 5})
    trainer.fit(module, DataLoader(_Boards(8), batch_size=2))  # no max_epochs or max_steps: time alone ends it
    rows = record.rows
    assert len(rows) > 8, "the budget should fit more than two epochs of these tiny steps"
    frozen = [enc == 0 for _, _, enc, *_ in rows]
    first_thawed = frozen.index(False)
    assert first_thawed > 0 and not any(frozen[first_thawed:]), "frozen first, then fine-tuned, never frozen again"
    if "freeze_epochs" in freeze:
        assert first_thawed == 4  # one epoch of steps
    heads = [h for _, h, *_ in rows]
    peak = max(heads[first_thawed:])
    assert heads[first_thawed] < peak, "the second cycle warms up"
    # the last step runs near the end of the cycle (1e-5 of the peak); a step much slower than the ones before
    # it (a loaded CI machine) can land it a little earlier, hence the margin
    assert heads[-1] < 0.1 * peak, f"the last step ran at {heads[-1] / peak:.2f} of the peak LR, not annealed"


def test_a_run_without_any_length_is_refused_with_the_budget_options_named():
    module = SegmentationModule(weights=None, num_classes=3)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, max_epochs=-1)
    with pytest.raises(ConfigError, match="max_time"):
        trainer.fit(module, DataLoader(_Boards(8), batch_size=2))
