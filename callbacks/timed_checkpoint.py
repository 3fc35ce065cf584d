"""A run killed without warning (SIGKILL, an out-of-memory kill, a pre-empted node) loses at most a
few minutes: ``last.ckpt`` is rewritten at most every ``every_minutes`` minutes of training and at
every epoch end.

* **When.** After a training batch, once ``every_minutes`` have passed since the last checkpoint of
  this run (any checkpoint: the epoch-end save of a :class:`~pytorch_lightning.callbacks.
  ModelCheckpoint` restarts the clock too). Not after the last batch of an epoch (the epoch-end save
  follows at once), nor inside a gradient-accumulation window (the accumulated gradients are not in
  a checkpoint), nor after a batch whose metrics are logged (every ``log_every_n_steps``-th, when
  that is > 1: Lightning writes the row after the batch-end hooks, and a kill between the
  checkpoint and the row would lose the row); the next batch saves instead.
  At the end of every training epoch, unless a ModelCheckpoint with ``save_last=True`` writes the
  same file there (it runs after this callback), a checkpoint was already written after the
  epoch's last batch, or the epoch stopped early (``max_steps``, early stopping:
  :class:`callbacks.stop_checkpoint.StopCheckpoint` saves there; a save at the epoch's end would
  mark it as finished). Nothing under ``fast_dev_run``.
* **What.** The full training state through ``trainer.save_checkpoint``: a save after a batch
  resumes mid-epoch at the next batch (the data modules' samplers record the batches served), so
  ``--ckpt_path last`` continues exactly where the file was written.
* **Order.** List it after any weight-averaging callback (an EMA), which updates its average in
  the same hook; setup stops with a ValueError otherwise.
* **How.** Through :class:`callbacks.atomic_checkpoint_io.AtomicCheckpointIO`, which this callback
  installs at setup: a checkpoint file is complete or absent, never truncated.

With several processes (DDP) rank zero's clock decides and the decision is broadcast after every
batch (one small collective per step), so all ranks save together.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from ar_models.errors import ModelConfigError
from callbacks.atomic_checkpoint_io import use_atomic_checkpoint_io
from callbacks.stop_checkpoint import (
    check_after_weight_averaging,
    checkpoint_dir,
    last_checkpoint_callbacks,
    save_last,
)

LAST_NAME = "last.ckpt"


class TimedCheckpoint(pl.Callback):
    """Rewrite ``last.ckpt`` at most every ``every_minutes`` and at every epoch end (module doc).

    Args:
        every_minutes: minutes of training between two checkpoints (> 0).
        filename: name of the file in the checkpoint folder (that of the first ModelCheckpoint, or
            ``<default_root_dir>/checkpoints``); ``last.ckpt`` is what ``--ckpt_path last`` finds.
    """

    def __init__(self, every_minutes: float = 10.0, filename: str = LAST_NAME) -> None:
        if isinstance(every_minutes, bool) or not (
            isinstance(every_minutes, (int, float)) and math.isfinite(every_minutes)
        ):
            raise ModelConfigError(
                f"every_minutes must be a finite number > 0, got {every_minutes!r}"
            )
        if every_minutes <= 0:
            raise ModelConfigError(f"every_minutes must be > 0, got {every_minutes!r}")
        if not filename.endswith(".ckpt") or "/" in filename:
            raise ModelConfigError(
                f"filename must be a file name ending in .ckpt, got {filename!r}"
            )
        self.every_minutes = float(every_minutes)
        self.filename = filename
        self._last_save = time.monotonic()
        self._saved_since_last_batch = False
        self._epoch_finished = False

    def path(self, trainer: pl.Trainer) -> Path:
        return checkpoint_dir(trainer) / self.filename

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        use_atomic_checkpoint_io(trainer)
        check_after_weight_averaging(trainer, self)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_save = time.monotonic()

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Every checkpoint written (by anyone) restarts the clock."""
        self._last_save = time.monotonic()
        self._saved_since_last_batch = True

    def _due(self, trainer: pl.Trainer) -> bool:
        due = time.monotonic() - self._last_save >= 60.0 * self.every_minutes
        if trainer.world_size > 1:
            due = bool(trainer.strategy.broadcast(due, src=0))
        return due

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._epoch_finished = batch_idx + 1 >= trainer.num_training_batches
        if trainer.fast_dev_run:
            return
        last_of_epoch = self._epoch_finished
        accumulating = (batch_idx + 1) % trainer.accumulate_grad_batches != 0
        # Lightning writes a batch's logged row after the batch-end hooks: a kill between this
        # checkpoint and that row would lose the row for good (the resumed run starts after it).
        every = trainer.log_every_n_steps
        logs_this_batch = every > 1 and trainer.global_step % every == 0
        if last_of_epoch or accumulating or logs_this_batch:
            return
        if self._due(trainer):
            save_last(trainer, self.path(trainer))

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._saved_since_last_batch = False
        self._epoch_finished = False

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Only after the epoch's last batch: a save in an epoch that stopped early (max_steps,
        early stopping) would mark it as finished, and a resumed run would skip its other
        batches."""
        if not self._epoch_finished or self._saved_since_last_batch or trainer.fast_dev_run:
            return
        if last_checkpoint_callbacks(trainer, self.path(trainer)):
            return  # a ModelCheckpoint(save_last=True) writes this file after this hook
        save_last(trainer, self.path(trainer))
