"""An exponential moving average of the weights whose averaged weights are also the ones tested.

θ̄ ← decay · θ̄ + (1 - decay) · θ after every optimiser step; validation, checkpoints (their
``state_dict``), the end of fit and the test all use θ̄.

Lightning's :class:`~pytorch_lightning.callbacks.EMAWeightAveraging` validates and checkpoints θ̄,
but when the same trainer then tests a checkpoint (``trainer.test(ckpt_path=...)`` after ``fit``,
as ``train.py`` does) its ``on_load_checkpoint`` puts the raw weights θ back into the model, so the
reported test bits/dim would not be those of the weights that were validated. This subclass
restores θ and θ̄ only when resuming a fit, and swaps weights only around validation during fit.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EMAWeightAveraging
from pytorch_lightning.trainer.states import TrainerFn

from ar_models.errors import ModelConfigError


def fitting(trainer: pl.Trainer) -> bool:
    return trainer.state.fn == TrainerFn.FITTING


class EMA(EMAWeightAveraging):
    """EMA of the weights (see the module docstring).

    Args:
        decay: weight of the old average at each step (0.999: a horizon of about 1,000 steps).
        update_starting_at_step: first optimiser step that updates the average (None: the first).
    """

    def __init__(self, decay: float = 0.999, update_starting_at_step: int | None = None) -> None:
        if not 0.0 < decay < 1.0:
            raise ModelConfigError(f"decay must be in (0, 1), got {decay}")
        super().__init__(decay=decay, update_starting_at_step=update_starting_at_step)

    def _follow_until_started(self, pl_module: pl.LightningModule) -> None:
        """Before its first update (``update_starting_at_step``) the average is the current
        weights, not a frozen copy of the initial ones (Lightning would validate, checkpoint and
        keep those)."""
        average = self._average_model
        if average is not None and int(average.n_averaged) == 0:
            with torch.no_grad():
                for mine, current in zip(
                    average.module.state_dict().values(),
                    pl_module.state_dict().values(),
                    strict=True,
                ):
                    mine.copy_(current)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if fitting(trainer):
            self._follow_until_started(pl_module)
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if fitting(trainer):
            super().on_validation_epoch_end(trainer, pl_module)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._follow_until_started(pl_module)
        super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._follow_until_started(pl_module)
        super().on_train_end(trainer, pl_module)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Outside fit the checkpoint's state_dict (θ̄) is what should be evaluated: keep it.
        if fitting(trainer):
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
