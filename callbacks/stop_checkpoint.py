"""Keep the work of a run that stops early: a checkpoint at the stop, whatever ended it.

* ``max_steps`` / ``max_time`` / early stopping ended training between two checkpoints:
  ``last.ckpt`` is rewritten at the stop (a clean state: resume with ``--ckpt_path last``). After
  a stop mid-epoch, ModelCheckpoints do not rewrite ``last.ckpt`` for the rest of the run (their
  ``save_last`` is off until teardown): at the epoch's end or in ``on_train_end`` they would save a
  state that marks the epoch as finished, and a resumed run would skip its other batches.
* Ctrl-C / SIGTERM (``KeyboardInterrupt``) or any other exception: ``interrupted-step<k>.ckpt``
  beside ``last.ckpt``, which keeps the last clean save (an interrupt may land mid-update).
* A non-finite loss (:class:`ar_models.base.NonFiniteLossError`): ``nonfinite-step<k>.ckpt``, the
  parameters with which the loss became non-finite (the failing step was not applied).

Written on global rank zero only, without collective calls, so it is safe inside an exception, and
atomically (:mod:`callbacks.atomic_checkpoint_io`, installed at setup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint, WeightAveraging
from pytorch_lightning.utilities import rank_zero_warn

from ar_models.errors import ModelConfigError, NonFiniteLossError
from callbacks.atomic_checkpoint_io import use_atomic_checkpoint_io


def checkpoint_dir(trainer: pl.Trainer) -> Path:
    """The first ModelCheckpoint's folder, else ``<default_root_dir>/checkpoints``."""
    callback = trainer.checkpoint_callback
    if callback is not None and getattr(callback, "dirpath", None):
        return Path(callback.dirpath)
    return Path(trainer.default_root_dir) / "checkpoints"


def last_checkpoint_callbacks(trainer: pl.Trainer, path: Path) -> list[ModelCheckpoint]:
    """The ModelCheckpoints whose ``save_last`` file is ``path`` (``<dirpath>/last.ckpt``)."""
    return [
        callback
        for callback in trainer.checkpoint_callbacks
        if isinstance(callback, ModelCheckpoint)
        and callback.save_last
        and callback.dirpath is not None
        and Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
        == path
    ]


def save_last(trainer: pl.Trainer, path: Path) -> None:
    """``trainer.save_checkpoint(path)`` (all ranks), where ``path`` is also a ModelCheckpoint's
    ``save_last`` file: that callback is told the file is its own (``last_model_path``), so that
    it goes on rewriting ``last.ckpt`` rather than starting a ``last-v1.ckpt`` beside it."""
    for callback in last_checkpoint_callbacks(trainer, path):
        callback.last_model_path = str(path)
    trainer.save_checkpoint(path, weights_only=False)  # the full state, said (no info line)


def check_after_weight_averaging(trainer: pl.Trainer, callback: pl.Callback) -> None:
    """Raise ValueError when a weight-averaging callback (an EMA) comes after ``callback`` in
    ``trainer.callbacks``: Lightning calls callbacks in list order, so a checkpoint written in
    ``callback``'s ``on_train_batch_end`` would miss that batch's update of the average."""
    position = trainer.callbacks.index(callback)
    later = [c for c in trainer.callbacks[position + 1 :] if isinstance(c, WeightAveraging)]
    if later:
        raise ModelConfigError(
            f"{type(callback).__name__} comes before {type(later[0]).__name__} in "
            f"trainer.callbacks; list it after {type(later[0]).__name__}, or its checkpoints "
            "would miss the last update of the averaged weights"
        )


def save_on_rank_zero(trainer: pl.Trainer, path: Path) -> None:
    """Write the full training state (weights, optimiser, loops, callbacks) to ``path``."""
    if not trainer.is_global_zero:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
    trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, path)


class StopCheckpoint(pl.Callback):
    """Save a checkpoint when training stops anywhere but at a checkpoint (see module doc)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        use_atomic_checkpoint_io(trainer)
        check_after_weight_averaging(trainer, self)

    def __init__(self) -> None:
        self._muted: list[tuple[ModelCheckpoint, Any]] = []

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Saved here, after the batch, Lightning resumes mid-epoch at the next batch (a save in
        ``on_train_end`` would mark the epoch as finished and skip its remaining batches)."""
        reached_max_steps = 0 < trainer.max_steps <= trainer.global_step
        if not (reached_max_steps or trainer.should_stop):
            return
        path = checkpoint_dir(trainer) / "last.ckpt"
        save_last(trainer, path)
        if batch_idx + 1 < trainer.num_training_batches:
            # Stopped mid-epoch: a ModelCheckpoint would rewrite last.ckpt at the epoch's end or
            # in on_train_end, in a state that marks the epoch as finished. Not this run.
            for callback in last_checkpoint_callbacks(trainer, path):
                self._muted.append((callback, callback.save_last))
                callback.save_last = False

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for callback, save_last_setting in self._muted:
            callback.save_last = save_last_setting
        self._muted.clear()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if trainer.sanity_checking or not trainer.training or trainer.global_step == 0:
            return  # before the first optimiser step there is nothing to keep
        prefix = "nonfinite" if isinstance(exception, NonFiniteLossError) else "interrupted"
        path = checkpoint_dir(trainer) / f"{prefix}-step{trainer.global_step}.ckpt"
        save_on_rank_zero(trainer, path)
        rank_zero_warn(
            f"training stopped at step {trainer.global_step} ({type(exception).__name__}); "
            f"state saved to {path} (resume with --ckpt_path {path})"
        )
