"""How much a VAE uses its latent code: active units and the mutual information I(x; z) under q.

Both are computed from the posteriors q(z|x_n) = N(μ_n, diag σ²_n) of a set of N examples, with the
latent flattened to L units (an ``[N, C, H, W]`` latent is L = C·H·W units).

* **Active units** (Burda et al. 2016): unit u is active when
  A_u = Cov_x(E_{q(z|x)}[z_u]) = Var_n(μ_nu) > 0.01, i.e. its posterior mean moves with the input.
  An unused unit has q(z_u|x) = p(z_u) for every x, hence A_u = 0.
* **Mutual information under q** (Hoffman & Johnson 2016, "ELBO surgery"):
  I_q(x; z) = E_x KL(q(z|x) ‖ q(z)), with the aggregate posterior q(z) = (1/N) Σ_n q(z|x_n) of the
  set. It splits the average KL of the ELBO as E_x KL(q(z|x) ‖ p(z)) = I_q(x; z) + KL(q(z) ‖ p(z)).
  Estimated with one z_i ~ q(z|x_i) per example:

      Î = (1/N) Σ_i [log q(z_i|x_i) − log (1/N) Σ_n q(z_i|x_n)]      (nats).

  Since the sum over n contains n = i, every term is ≤ log N: the estimate cannot exceed log N
  (6.9 nats for N = 1,000), whatever the code carries. It is 0 for an unused latent and near
  log N once the posteriors of different examples barely overlap.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

#: Burda et al.'s threshold on Cov_x(E_q[z_u]).
ACTIVE_THRESHOLD = 0.01
LOG_2PI = math.log(2.0 * math.pi)


def _flat(t: Tensor) -> Tensor:
    return t.reshape(len(t), -1).double()


def check_posteriors(mu: Tensor, logvar: Tensor) -> None:
    """Raise ValueError unless ``mu`` and ``logvar`` are finite float tensors of one shape with
    at least one example."""
    if not (isinstance(mu, Tensor) and isinstance(logvar, Tensor)):
        raise ValueError("mu and logvar must be tensors")
    if mu.shape != logvar.shape or mu.dim() < 2 or len(mu) == 0:
        raise ValueError(
            f"mu and logvar must both be [N, ...] with N >= 1, got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}"
        )
    if not (torch.isfinite(mu).all() and torch.isfinite(logvar).all()):
        raise ValueError("mu and logvar must be finite")


def unit_activity(mu: Tensor) -> Tensor:
    """A_u = Var_n(μ_nu) of each latent unit (population variance over the N examples),
    ``[L]`` float64."""
    return _flat(mu).var(0, unbiased=False)


def active_units(mu: Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """The number of latent units with A_u = Var_n(μ_nu) > ``threshold`` (Burda et al. 2016)."""
    return int((unit_activity(mu) > threshold).sum())


def log_q_matrix(z: Tensor, mu: Tensor, logvar: Tensor, chunk: int = 256) -> Tensor:
    """log q(z_i | x_n) = Σ_u log N(z_iu; μ_nu, σ²_nu) for every pair (i, n): ``[N_z, N]``
    float64 nats. Computed as −½ [Σ_u z²/σ² − 2 z μ/σ² + μ²/σ² + log σ² + log 2π] with matrix
    products, ``chunk`` rows of z at a time."""
    z, mu, logvar = _flat(z), _flat(mu), _flat(logvar)
    precision = torch.exp(-logvar)  # [N, L]
    const = (mu**2 * precision + logvar).sum(1) + mu.shape[1] * LOG_2PI  # [N]
    rows = []
    for start in range(0, len(z), chunk):
        zc = z[start : start + chunk]
        quad = (zc**2) @ precision.T - 2.0 * zc @ (mu * precision).T
        rows.append(-0.5 * (quad + const))
    return torch.cat(rows)


def mutual_information(
    mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
) -> float:
    """Î(x; z) under q in nats (module docstring), the aggregate posterior being the mixture of
    the N posteriors given; one z_i ~ q(z|x_i) each (drawn with ``generator`` if given)."""
    check_posteriors(mu, logvar)
    mu64, logvar64 = _flat(mu), _flat(logvar)
    eps = torch.randn(mu64.shape, generator=generator, dtype=torch.float64).to(mu64.device)
    z = mu64 + torch.exp(0.5 * logvar64) * eps
    log_q = log_q_matrix(z, mu64, logvar64)  # [N, N]
    own = log_q.diagonal()
    aggregate = torch.logsumexp(log_q, dim=1) - math.log(len(mu64))
    return float((own - aggregate).mean())


class LatentUse(Metric):
    """Active units and Î(x; z) of the first ``max_points`` examples seen (per process; under DDP
    the processes' sets are joined). ``update(mu, logvar)`` with the posterior parameters
    ``[B, ...]`` of a batch; ``compute()`` -> ``{"active_units": count, "mi_nats": Î}``. The MI
    draw is seeded (``seed``), so the same posteriors give the same estimate."""

    full_state_update = False

    def __init__(self, max_points: int = 1000, seed: int = 0) -> None:
        super().__init__()
        if max_points < 2:
            raise ValueError(f"max_points must be >= 2, got {max_points}")
        self.max_points = max_points
        self.seed = seed
        self.add_state("mu", default=[], dist_reduce_fx="cat")
        self.add_state("logvar", default=[], dist_reduce_fx="cat")
        self._seen = 0

    def update(self, mu: Tensor, logvar: Tensor) -> None:
        check_posteriors(mu, logvar)
        room = self.max_points - self._seen
        if room <= 0:
            return
        self.mu.append(mu[:room].detach().reshape(len(mu[:room]), -1).float())
        self.logvar.append(logvar[:room].detach().reshape(len(logvar[:room]), -1).float())
        self._seen += len(self.mu[-1])

    def compute(self) -> dict[str, Tensor]:
        mu, logvar = dim_zero_cat(self.mu), dim_zero_cat(self.logvar)
        generator = torch.Generator().manual_seed(self.seed)
        return {
            "active_units": torch.tensor(float(active_units(mu))),
            "mi_nats": torch.tensor(mutual_information(mu, logvar, generator)),
        }

    def reset(self) -> None:
        super().reset()
        self._seen = 0
