"""Fit a VAE's prior to its aggregate posterior at the end of training.

In each of the fit's last ``last_epochs`` epochs, :class:`FitPrior` keeps the posteriors
(μ, log σ²) of q(z|x) of every training batch, taken before its step (``model.posterior(x)``,
gathered from every process), and at the start of that epoch's validation calls
``model.prior.fit_to_posteriors(posteriors, steps, seed=epoch)`` (:mod:`vae_models.priors`): a
learned prior takes ``steps`` Adam steps on −log p(z) at draws z ~ q(z|x); the fitted mixture is
fitted by EM to the posterior means. The validation, the checkpoints saved from then on, the
test and the samples all use the fitted prior. It logs ``train/prior_fit_nll``, the last step's
mean −log p(z) in nats (a learned prior).

The last epochs are those the fit completes: ``max_epochs``, or the complete epochs before
``max_steps`` ends it (an epoch cut short is not validated); every epoch when neither bounds the
fit. A debugging run (``fast_dev_run``) takes one step.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from ar_models.base import unpack_batch
from ar_models.errors import check
from callbacks.hooks import PriorModel, require_hooks


def epochs_in_fit(trainer: pl.Trainer) -> int | None:
    """The training epochs a fit completes, each ending in a validation: ``max_epochs``, or fewer
    when ``max_steps`` ends the fit first; None when neither bounds it."""
    per_epoch = trainer.num_training_batches / max(trainer.accumulate_grad_batches, 1)
    if not math.isfinite(per_epoch) or per_epoch <= 0:
        max_epochs = trainer.max_epochs
        return None if max_epochs is None or max_epochs < 0 else max_epochs
    total = trainer.estimated_stepping_batches
    return int(total // math.ceil(per_epoch)) if math.isfinite(total) else None


class FitPrior(pl.Callback):
    """Fit the model's prior to the posteriors of its last training epochs (module docstring).

    Args:
        last_epochs: F >= 1, the prior is fitted in each of the fit's last F epochs.
        steps: S >= 1, Adam steps of each fit of a learned prior (unused by the EM-fitted one).
    """

    def __init__(self, last_epochs: int = 1, steps: int = 6000) -> None:
        check(integer=True, minimum=1, last_epochs=last_epochs, steps=steps)
        self.last_epochs, self.steps = last_epochs, steps
        self._posteriors: list[Tensor] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        require_hooks(self, pl_module, PriorModel)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        n_epochs = epochs_in_fit(trainer)
        last = n_epochs is None or trainer.current_epoch >= n_epochs - self.last_epochs
        self._posteriors = [] if last else None

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._posteriors is None:
            return
        with torch.no_grad():  # at the weights of the step's own forward pass
            mu, logvar = pl_module.posterior(unpack_batch(batch))
        self._posteriors.append(torch.stack([mu, logvar], 1))

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        posteriors, self._posteriors = self._posteriors, None
        if trainer.sanity_checking or not posteriors:
            return
        posteriors = torch.cat(posteriors)
        if trainer.world_size > 1:  # every process fits the same prior to all the posteriors
            posteriors = pl_module.all_gather(posteriors).flatten(0, 1)
        prior = pl_module.prior
        steps = 1 if trainer.fast_dev_run else self.steps
        losses = prior.fit_to_posteriors(posteriors, steps, seed=trainer.current_epoch)
        if losses and prior.trainable:
            pl_module.log("train/prior_fit_nll", losses[-1], on_step=False, on_epoch=True)
