"""Lightning callbacks of pcbseg's own: what no Lightning callback does."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, Timer

log = logging.getLogger(__name__)


class ValidationBudget(Callback):
    """Skips an epoch's validation pass when it would cost more than ``max_share`` of the training time.

    Validation runs on whole images while training sees crops, so on large frames (a 640 x 480 webcam
    set) one pass over a quarter of the set can cost as much as a training epoch, and a short run spends
    half its minutes validating. This callback validates the first epoch (to time a pass), then only
    once the training time since the last pass has grown to ``1 / max_share`` times a pass. The run's
    last epoch is always validated, whether it ends by ``max_epochs``, ``max_steps`` or ``max_time``, so
    the final weights are always a candidate for the best checkpoint. ``max_share=null`` validates every
    epoch. Early stopping's patience counts validation passes, so with skipped passes it spans more epochs.

    Example::

        >>> cb = ValidationBudget(max_share=0.25)
        >>> trainer = L.Trainer(max_epochs=3, callbacks=[cb])  # doctest: +SKIP
    """

    def __init__(self, max_share: float | None = 0.25) -> None:
        number = isinstance(max_share, (int, float)) and not isinstance(max_share, bool)
        if max_share is not None and not (number and max_share > 0):
            raise ValueError(f"ValidationBudget: max_share must be > 0 (or null), got {max_share}")
        self.max_share = max_share
        self.val_s: float | None = None        # the last full pass, seconds
        self.train_since_val_s = 0.0           # training seconds since that pass
        self.epoch_s: float | None = None      # the last epoch's training seconds
        self.skipped: list[int] = []           # epochs whose validation was skipped
        self._limit: Any = None
        self._epoch_start: float | None = None
        self._val_start: float | None = None
        self._val_in_epoch = 0.0

    # timing --------------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._limit is None:
            self._limit = trainer.limit_val_batches
        self._epoch_start, self._val_in_epoch = time.monotonic(), 0.0
        if self._limit == 0 or self.max_share is None:
            return
        validate = self._worth_it(trainer) or self._last_epoch(trainer)
        trainer.limit_val_batches = self._limit if validate else 0
        if not validate:
            self.skipped.append(trainer.current_epoch)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # The run may end sooner than the epoch-start estimate said (a slower epoch under max_time, a stop
        # request): validation is switched back on before Lightning decides, after this hook, whether to run it.
        if trainer.limit_val_batches == 0 and self._limit not in (None, 0) and self._ending(trainer):
            trainer.limit_val_batches = self._limit
            self.skipped.remove(trainer.current_epoch)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._val_start = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._val_start is None:
            return
        took = time.monotonic() - self._val_start
        self._val_start = None
        self._val_in_epoch += took
        self.val_s = took
        self.train_since_val_s = 0.0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._epoch_start is None:
            return
        # Lightning validates inside the epoch, before this hook: its time is not training time.
        self.epoch_s = max(0.0, time.monotonic() - self._epoch_start - self._val_in_epoch)
        if self._val_in_epoch == 0.0:
            self.train_since_val_s += self.epoch_s
        if self._limit is not None:  # leave the trainer as configured between epochs (and for checkpoints)
            trainer.limit_val_batches = self._limit

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.skipped:
            log.info("Validation skipped at epochs %s: a pass (%.1f s) cost more than %.0f%% of the training "
                     "since the last one (callbacks.val_budget.max_share)", self.skipped, self.val_s or 0.0,
                     100 * (self.max_share or 0.0))

    # decisions -----------------------------------------------------------------------------------
    def _worth_it(self, trainer: L.Trainer) -> bool:
        if self.val_s is None or self.epoch_s is None:
            return True  # nothing measured yet: validate, and time it
        return self.val_s <= self.max_share * (self.train_since_val_s + self.epoch_s)

    def _last_epoch(self, trainer: L.Trainer) -> bool:
        """Whether this epoch is probably the run's last (so it must be validated)."""
        if trainer.max_epochs is not None and trainer.max_epochs >= 0 and trainer.current_epoch >= trainer.max_epochs - 1:
            return True
        if trainer.max_steps is not None and trainer.max_steps >= 0:
            per_epoch = trainer.num_training_batches / max(1, trainer.accumulate_grad_batches)
            if math.isfinite(per_epoch) and trainer.global_step + per_epoch >= trainer.max_steps:
                return True
        remaining = _time_remaining(trainer)
        # An epoch may run longer than the last one: the margin keeps the run's end inside a validated epoch.
        return remaining is not None and (self.epoch_s is None or remaining <= 1.5 * self.epoch_s + (self.val_s or 0.0))

    def _ending(self, trainer: L.Trainer) -> bool:
        """Whether the run stops at (or within a second of) this batch."""
        remaining = _time_remaining(trainer)
        return bool(trainer.should_stop) or (remaining is not None and remaining <= 1.0)


def _time_remaining(trainer: L.Trainer) -> float | None:
    """Seconds left of ``trainer.max_time``, or None without a time budget."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer) and c._duration is not None), None)
    return None if timer is None else timer.time_remaining("train")
