"""The importance-weighted bound (Burda et al. 2016) from log importance weights.

With z_1..z_k ~ q(z|x) and log weights log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x),

    IWAE_k(x) = log (1/k) Σ_i w_i = logsumexp_i(log w_i) − log k  ≤  log p(x)   (nats).

E[IWAE_1] is the ELBO, and E[IWAE_k] is non-decreasing in k and tends to log p(x).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """log((1/k) Σ_i exp(log_w_i)) along ``dim``, computed stably as logsumexp − log k."""
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def iwae_bound(log_w: Tensor) -> Tensor:
    """IWAE_k for log weights ``[k, B]``: one lower bound on log p(x) per example, ``[B]`` nats."""
    return log_mean_exp(log_w, dim=0)
