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
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ar_models.base import DensityModel, unpack_batch
from vae_models.latent_use import LatentUse

DIAGNOSTIC_STAGES = ("val", "test")


class LatentVariableModel(DensityModel):
    """DensityModel with a latent z ~ q(z|x) = N(μ(x), diag σ²(x)); logs latent use per epoch.

    Args:
        lr, weight_decay: see :class:`ar_models.base.DensityModel`.
    """

    #: examples of each validation/test epoch whose posteriors enter the diagnostics.
    latent_points: int = 1000

    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.0) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay)
        self.latent_use = nn.ModuleDict(
            {stage: LatentUse(self.latent_points) for stage in DIAGNOSTIC_STAGES}
        )

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²) of q(z|x) for a batch ``x``, each ``[B, ...]`` (any latent shape)."""
        raise NotImplementedError

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
