"""Keep the work of a run that stops early: a checkpoint at the stop, whatever ended it.

* ``max_steps`` / ``max_time`` / early stopping ended training between two checkpoints:
  ``last.ckpt`` is rewritten at the stop (a clean state: resume with ``--ckpt_path last``).
* Ctrl-C / SIGTERM (``KeyboardInterrupt``) or any other exception: ``interrupted-step<k>.ckpt``
  beside ``last.ckpt``, which keeps the last clean save (an interrupt may land mid-update).
* A non-finite loss (:class:`ar_models.base.NonFiniteLossError`): ``nonfinite-step<k>.ckpt``, the
  parameters with which the loss became non-finite (the failing step was not applied).

Written on global rank zero only, without collective calls, so it is safe inside an exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_warn

from ar_models.base import NonFiniteLossError


def checkpoint_dir(trainer: pl.Trainer) -> Path:
    callback = trainer.checkpoint_callback
    if callback is not None and getattr(callback, "dirpath", None):
        return Path(callback.dirpath)
    return Path(trainer.default_root_dir) / "checkpoints"


def save_on_rank_zero(trainer: pl.Trainer, path: Path) -> None:
    """Write the full training state (weights, optimiser, loops, callbacks) to ``path``."""
    if not trainer.is_global_zero:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
    trainer.strategy.checkpoint_io.save_checkpoint(checkpoint, path)


class StopCheckpoint(pl.Callback):
    """Save a checkpoint when training stops anywhere but at a checkpoint (see module doc)."""

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        """Saved here, after the batch, Lightning resumes mid-epoch at the next batch (a save in
        ``on_train_end`` would mark the epoch as finished and skip its remaining batches)."""
        reached_max_steps = 0 < trainer.max_steps <= trainer.global_step
        if reached_max_steps or trainer.should_stop:
            trainer.save_checkpoint(checkpoint_dir(trainer) / "last.ckpt")

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
