"""Lightning callbacks pcbseg adds to the stock ones.

Example:
    >>> from pcbseg.callbacks import FreezeEncoder
    >>> FreezeEncoder(freeze_epochs=2).freeze_epochs
    2
"""

from __future__ import annotations

import logging

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn
from torch.optim import Optimizer

log = logging.getLogger(__name__)


class FreezeEncoder(BaseFinetuning):
    """Freeze the encoder (weights and BatchNorm statistics) for ``freeze_epochs``, then train it.

    ``freeze_epochs`` defaults to the module's ``hparams.freeze_epochs``. The encoder's parameter
    group is in the optimiser from the start, at ``lr / encoder_lr_div`` and held at zero by the
    schedule while frozen, so unfreezing adds no group and the schedule stays whole. The state is
    decided from the epoch alone, so a run resumed in either phase freezes or not as it should.
    """

    def __init__(self, freeze_epochs: int | None = None):
        super().__init__()
        self.freeze_epochs = freeze_epochs

    def _epochs(self, pl_module: L.LightningModule) -> int:
        return self.freeze_epochs if self.freeze_epochs is not None else int(pl_module.hparams.get("freeze_epochs", 0))

    @staticmethod
    def is_frozen(pl_module: L.LightningModule) -> bool:
        return not any(p.requires_grad for p in pl_module.encoder.parameters())

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        if self._epochs(pl_module) > 0:
            self.freeze(pl_module.encoder, train_bn=False)

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        should_freeze = epoch < self._epochs(pl_module)
        if should_freeze and not self.is_frozen(pl_module):
            self.freeze(pl_module.encoder, train_bn=False)
        elif not should_freeze and self.is_frozen(pl_module):
            self.make_trainable(pl_module.encoder)
            log.info("Epoch %d: encoder unfrozen", epoch)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.is_frozen(pl_module):
            # Lightning puts the whole model in train mode each epoch; frozen BatchNorm must keep
            # using its pretrained running statistics, not the batch's.
            for m in pl_module.encoder.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
