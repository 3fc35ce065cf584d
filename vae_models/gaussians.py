"""Diagonal-Gaussian helpers for VAEs: log-density, KL to N(0, I), reparameterised sampling.

Every Gaussian here is parameterised by its mean ``mu`` and **log**-variance ``logvar`` (never the
variance), so densities and KLs are computed in log space. All results are in nats. The last axis
is the event axis: ``mu``, ``logvar`` and ``x`` broadcast against each other, ``logvar`` may have
size 1 on the last axis (an isotropic Gaussian, one variance σ² shared by all dimensions).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)


def soft_clamp(x: Tensor, low: float, high: float) -> Tensor:
    """A smooth clamp of ``x`` into ``[low, high]``: near identity inside (error e^{-distance to the
    nearest edge}), softplus at the edges.

    ``low + softplus(high - softplus(high - x) - low)``; used on network log-variance outputs so
    that ``exp(±logvar)`` stays finite whatever the input.
    """
    return low + F.softplus(high - F.softplus(high - x) - low)


def gaussian_log_prob_per_dim(x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(x_d; μ_d, σ_d²) = -½ [log 2π + log σ_d² + (x_d - μ_d)² / σ_d²] for each dimension d."""
    return -0.5 * (LOG_2PI + logvar + (x - mu) ** 2 * torch.exp(-logvar))


def gaussian_log_prob(x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(x; μ, diag σ²) = Σ_d log N(x_d; μ_d, σ_d²), summed over the last axis (nats).

    With ``logvar`` of size 1 on the last axis this is the isotropic N(x; μ, σ² I).
    """
    x, mu, logvar = torch.broadcast_tensors(x, mu, logvar)
    return gaussian_log_prob_per_dim(x, mu, logvar).sum(-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) = -½ Σ_d (log 2π + z_d²), summed over the last axis (nats)."""
    return -0.5 * (LOG_2PI + z**2).sum(-1)


def kl_std_normal_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ_d, σ_d²) ‖ N(0, 1)) = ½ (σ_d² + μ_d² - 1 - log σ_d²) per dimension d (nats, ≥ 0)."""
    return 0.5 * (torch.exp(logvar) + mu**2 - 1.0 - logvar)


def kl_std_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)), the sum of :func:`kl_std_normal_per_dim` over the last axis."""
    return kl_std_normal_per_dim(mu, logvar).sum(-1)


def reparameterize(
    mu: Tensor, logvar: Tensor, k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """z = μ + σ ⊙ ε with ε ~ N(0, I): a sample of N(μ, diag σ²) that is differentiable in μ, σ.

    With ``k`` given, ``k`` independent samples stacked on a new leading axis: ``[k, *mu.shape]``;
    ε is drawn from ``generator`` when given (else the global generator).
    """
    shape = mu.shape if k is None else (k, *mu.shape)
    eps = torch.randn(shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * logvar) * eps
