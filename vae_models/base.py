"""The shared base of the VAEs: a :class:`ar_models.base.DensityModel` that also logs how much the
latent code is used.

A subclass implements :meth:`LatentVariableModel.posterior`, the parameters (μ, log σ²) of the
diagonal Gaussian q(z|x) for a batch ``x``. Every validation and test epoch the base encodes the
first :attr:`LatentVariableModel.latent_points` examples of the stage and logs (see
:mod:`vae_models.latent_use`)

* ``<stage>/active_units``: the number of latent units with Cov_x(E_q[z_u]) > 0.01;
* ``<stage>/mi_nats``: the estimate of I(x; z) under q, in nats per example (at most
  log ``latent_points``).

Both are descriptive statistics of the encoder; the bound (``<stage>/bpd``) is unchanged.

Options against posterior collapse change the *training objective* only (the logged terms are
always the true bound): ``free_bits`` λ (nats per latent channel, Kingma et al. 2016) and
``kl_warmup_steps`` T_w, and ``beta`` β (the KL's final weight, Higgins et al. 2017). With
w_t = β · min(1, t / T_w) (β when T_w = 0) the objective per batch is

    mean recon + w_t · Σ_j max(λ, mean over the batch of kl_ch<j>)     (nats per example),

divided by D like the loss. It needs the ``kl_ch<j>`` terms of :meth:`loss_terms`.

The optimiser is Adam; with ``lr_final_factor`` < 1 its learning rate
follows a cosine from ``lr`` at the first step to ``lr · lr_final_factor`` at the trainer's last,
lr_t = lr · [f + (1 − f) · ½ (1 + cos(π t / T))], stepped every training step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ar_models.base import DensityModel, unpack_batch
from ar_models.errors import ModelConfigError, check
from vae_models.latent_use import LatentUse

DIAGNOSTIC_STAGES = ("val", "test")


class LatentVariableModel(DensityModel):
    """DensityModel with a latent z ~ q(z|x) = N(μ(x), diag σ²(x)); logs latent use per epoch.

    Args:
        lr: Adam learning rate.
        lr_final_factor: f in (0, 1]: the learning rate decays along a cosine from ``lr`` to
            ``lr · f`` over the trainer's total steps (1.0: constant).
        free_bits: λ >= 0, nats per latent channel below which the KL is not penalised in
            training (0: off).
        kl_warmup_steps: T_w, training steps of the linear KL warm-up (0: off).
        beta: β >= 0, the KL's weight in training once warmed up (1: the ELBO).
    """

    #: examples of each validation/test epoch whose posteriors enter the diagnostics.
    latent_points: int = 1000

    def __init__(
        self,
        lr: float = 1e-3,
        lr_final_factor: float = 1.0,
        free_bits: float = 0.0,
        kl_warmup_steps: int = 0,
        beta: float = 1.0,
    ) -> None:
        check(minimum=0, beta=beta)
        if not 0.0 < lr_final_factor <= 1.0:
            raise ModelConfigError(f"lr_final_factor must be in (0, 1], got {lr_final_factor}")
        check(minimum=0, free_bits=free_bits)
        check(integer=True, minimum=0, kl_warmup_steps=kl_warmup_steps)
        super().__init__(lr=lr)
        self.lr_final_factor = lr_final_factor
        self.free_bits = float(free_bits)
        self.kl_warmup_steps = kl_warmup_steps
        self.beta = float(beta)
        self._train_terms: dict[str, Tensor] | None = None
        self.latent_use = nn.ModuleDict(
            {stage: LatentUse(self.latent_points) for stage in DIAGNOSTIC_STAGES}
        )

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²) of q(z|x) for a batch ``x``, each ``[B, ...]`` (any latent shape)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ training objective
    def warmup_factor(self) -> float:
        """min(1, step / kl_warmup_steps), 1 without a warm-up: the ramp of the KL's weight."""
        if self.kl_warmup_steps <= 0:
            return 1.0
        return min(1.0, self.global_step / self.kl_warmup_steps)

    def kl_weight(self) -> float:
        """The KL's weight in the training objective: β · min(1, step / kl_warmup_steps)."""
        return self.beta * self.warmup_factor()

    def kl_objective_change(self, terms: dict[str, Tensor]) -> Tensor:
        """w_t · Σ_j max(λ, mean kl_ch<j>) − mean kl (nats per example, a scalar): what turns the
        batch's mean −ELBO into the training objective (module docstring); 0 when all are off
        (λ = 0, T_w = 0, β = 1)."""
        kl = terms["kl"]
        if self.free_bits <= 0 and self.kl_warmup_steps <= 0 and self.beta == 1.0:
            return torch.zeros((), dtype=kl.dtype, device=kl.device)
        n_channels = sum(1 for name in terms if name.startswith("kl_ch"))
        if n_channels == 0:
            raise ModelConfigError(f"{type(self).__name__}.loss_terms gives no kl_ch<j> terms")
        per_channel = torch.stack([terms[f"kl_ch{j}"] for j in range(n_channels)], 1).mean(0)
        if self.free_bits > 0:
            per_channel = per_channel.clamp(min=self.free_bits)
        return per_channel.sum() * self.kl_weight() - kl.mean()

    def batch_loss_terms(self, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        x, terms = super().batch_loss_terms(batch)
        if self.training:
            self._train_terms = terms
        return x, terms

    def training_objective_change(self, batch: Any, terms: dict[str, Tensor]) -> Tensor:
        """Nats per example (a scalar) added to the batch's mean −ELBO in training; subclasses
        add their own terms to :meth:`kl_objective_change`."""
        return self.kl_objective_change(terms)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """The base's step (logs the true −ELBO and its terms, returns it per dimension) plus
        :meth:`training_objective_change` / D."""
        self._train_terms = None
        loss = super().training_step(batch, batch_idx)
        terms, self._train_terms = self._train_terms, None
        if terms is None:
            return loss
        return loss + self.training_objective_change(batch, terms) / self.n_dims

    # ------------------------------------------------------------------ latent-use diagnostics
    def _update_latent_use(self, stage: str, batch: Any) -> None:
        metric = self.latent_use[stage]
        if metric._seen < metric.max_points:
            metric.update(*self.posterior(unpack_batch(batch)))

    def _log_latent_use(self, stage: str) -> None:
        metric = self.latent_use[stage]
        if metric._seen == 0 and not metric.mu:
            return
        for name, value in metric.compute().items():
            self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True)
        metric.reset()

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.latent_use["val"].reset()

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self.latent_use["test"].reset()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self._update_latent_use("val", batch)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        self._update_latent_use("test", batch)

    def on_validation_epoch_end(self) -> None:
        self._log_latent_use("val")

    def on_test_epoch_end(self) -> None:
        self._log_latent_use("test")

    def configure_optimizers(self) -> Any:
        optimizer = super().configure_optimizers()
        if self.lr_final_factor >= 1.0:
            return optimizer
        estimated = float(self.trainer.estimated_stepping_batches)
        if not math.isfinite(estimated):
            raise ModelConfigError("lr_final_factor < 1 needs a finite max_epochs or max_steps")
        total = max(int(estimated), 1)
        final = self.lr_final_factor

        def factor(step: int) -> float:
            return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * min(step / total, 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
