"""A learned mixture-of-Gaussians prior over a latent of any shape.

With the latent flattened to z ∈ ℝ^D (channel-major, as ``z.flatten(1)``), K components of
diagonal Gaussians:

    p(z) = Σ_k π_k ∏_d N(z_d; m_{k,d}, s_{k,d}²),     π = softmax(logits),

all of π, m and log s trained with the rest of the model through the ELBO. ``log s`` is
soft-clamped to [``LOG_SCALE_MIN``, ``LOG_SCALE_MAX``].

Per-element log-densities. The VAEs log the KL of each latent channel, so log p(z) is split
exactly by the chain rule, log p(z) = Σ_d log p(z_d | z_<d): with
L_{k,d} = log N(z_d; m_{k,d}, s_{k,d}²) and A_{k,d} = log π_k + Σ_{d' < d} L_{k,d'},

    log p(z_d | z_<d) = logsumexp_k (A_{k,d} + L_{k,d}) − logsumexp_k A_{k,d},

(the component posterior given z_<d weights the d-th factors); the terms telescope to
logsumexp_k (log π_k + Σ_d L_{k,d}) = log p(z). Everything is in nats. :func:`chain_rule` does
this for any components whose factors L_{k,d} = log p_k(z_d | z_<d) are known (also the
full-covariance ones of :mod:`vae_models.fitted_prior`).

Sampling: k ~ π, then z = m_k + s_k ⊙ ε, ε ~ N(0, I).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ar_models.errors import check
from vae_models.gaussians import soft_clamp

LOG_SCALE_MIN, LOG_SCALE_MAX = -5.0, 2.0
LOG_2PI = math.log(2.0 * math.pi)


def chain_rule(per_dim: Tensor, log_weights: Tensor) -> Tensor:
    """The mixture's factors log p(z_d | z_<d), ``[B, D]``, from the components' factors
    L_{k,d} = log p_k(z_d | z_<d) ``[B, K, D]`` and log π ``[K]`` (module docstring)."""
    before = log_weights[None, :, None] + torch.cumsum(per_dim, 2) - per_dim  # A_{k,d}
    return torch.logsumexp(before + per_dim, 1) - torch.logsumexp(before, 1)


class GaussianMixturePrior(nn.Module):
    """p(z) for ``z: [B, *latent_shape]``, a K-component diagonal Gaussian mixture (module
    docstring). Starts with equal weights, unit scales and means drawn from N(0, I) (the seeded
    global generator), so that the components differ from the first step."""

    def __init__(self, latent_shape: tuple[int, ...], n_components: int) -> None:
        super().__init__()
        check(integer=True, minimum=1, n_components=n_components)
        self.latent_shape = tuple(latent_shape)
        n_dims = math.prod(self.latent_shape)
        self.logits = nn.Parameter(torch.zeros(n_components))
        self.means = nn.Parameter(torch.randn(n_components, n_dims))
        self.log_scales = nn.Parameter(torch.zeros(n_components, n_dims))

    @property
    def n_components(self) -> int:
        return self.logits.shape[0]

    def log_s(self) -> Tensor:
        """The components' log-scales log s_{k,d} (soft-clamped), ``[K, D]``."""
        return soft_clamp(self.log_scales, LOG_SCALE_MIN, LOG_SCALE_MAX)

    def _component_log_probs(self, z: Tensor) -> Tensor:
        """L_{k,d} = log N(z_d; m_{k,d}, s_{k,d}²), ``[B, K, D]``."""
        flat = z.flatten(1)[:, None, :]
        log_s = self.log_s()
        return -0.5 * (LOG_2PI + ((flat - self.means) / log_s.exp()) ** 2) - log_s

    def log_prob_elements(self, z: Tensor) -> Tensor:
        """log p(z_d | z_<d) for every element, shaped like ``z`` (they sum to log p(z))."""
        per_dim = self._component_log_probs(z)  # [B, K, D]
        return chain_rule(per_dim, torch.log_softmax(self.logits, 0)).view_as(z)

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) per example, ``[B]`` nats."""
        log_pi = torch.log_softmax(self.logits, 0)
        return torch.logsumexp(log_pi + self._component_log_probs(z).sum(-1), 1)

    @torch.no_grad()
    def sample(self, n: int, device: torch.device | str | None = None) -> Tensor:
        """z ~ p(z), ``[n, *latent_shape]`` (global RNG)."""
        device = self.logits.device if device is None else device
        k = torch.multinomial(torch.softmax(self.logits, 0), n, replacement=True)
        log_s = self.log_s()
        eps = torch.randn(n, self.means.shape[1], device=self.means.device)
        z = self.means[k] + log_s[k].exp() * eps
        return z.view(n, *self.latent_shape).to(device)
