"""A Gaussian-mixture prior whose parameters are set by EM on latent codes, not by gradients.

With the latent flattened to z ∈ ℝ^D (as ``z.flatten(1)``), K full-covariance components,

    p(z) = Σ_k π_k N(z; m_k, L_k L_kᵀ)          (L_k lower-triangular, positive diagonal),

held in buffers (saved in checkpoints, never trained). Until :meth:`FittedMixturePrior.fit` has
run, p(z) = N(0, I) exactly.

Per-element log-densities, as :mod:`vae_models.mixture_prior` (so that the VAEs' per-channel KLs
add up): within component k the chain-rule factor of element d is the conditional Gaussian
log N(z_d | z_<d) = log N(ε_{k,d}; 0, 1) − log L_k[d, d] with ε_k = L_k⁻¹ (z − m_k), and the
mixture's factor weights these by the component posterior given z_<d
(:func:`vae_models.mixture_prior.chain_rule`). Everything is in nats.

Fitting (:meth:`FittedMixturePrior.fit`, in float64): k-means (Lloyd, from K distinct points
drawn with a seeded generator) gives the initial means, weights and covariances; then EM,
maximising Σ_n log p(z_n) over the mixtures; ``reg`` is added to every covariance's diagonal.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ar_models.errors import check
from vae_models.mixture_prior import chain_rule

LOG_2PI = math.log(2.0 * math.pi)
KMEANS_STEPS = 20
EM_STEPS = 30
REG_COVAR = 1e-4


def component_log_probs(z: Tensor, means: Tensor, scale_tril: Tensor) -> Tensor:
    """log N(z_d | z_<d) within each component, ``[B, K, D]``, for ``z`` [B, D]."""
    centred = (z[:, None, :] - means[None]).permute(1, 2, 0)  # [K, D, B]
    eps = torch.linalg.solve_triangular(scale_tril, centred, upper=False)  # [K, D, B]
    log_diag = torch.diagonal(scale_tril, dim1=1, dim2=2).log()  # [K, D]
    return (-0.5 * (LOG_2PI + eps**2) - log_diag[:, :, None]).permute(2, 0, 1)


class FittedMixturePrior(nn.Module):
    """p(z) for ``z: [B, *latent_shape]`` (module docstring): N(0, I) until fitted, then a
    K-component full-covariance Gaussian mixture."""

    def __init__(self, latent_shape: tuple[int, ...], n_components: int) -> None:
        super().__init__()
        check(integer=True, minimum=1, n_components=n_components)
        self.latent_shape = tuple(latent_shape)
        d = math.prod(self.latent_shape)
        k = n_components
        self.register_buffer("log_weights", torch.full((k,), -math.log(k)))
        self.register_buffer("means", torch.zeros(k, d))
        self.register_buffer("scale_tril", torch.eye(d).repeat(k, 1, 1))
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def n_components(self) -> int:
        return self.log_weights.shape[0]

    def log_prob_elements(self, z: Tensor) -> Tensor:
        """log p(z_d | z_<d) for every element, shaped like ``z`` (they sum to log p(z))."""
        if not bool(self.fitted):
            return -0.5 * (LOG_2PI + z**2)
        flat = z.flatten(1)
        per_dim = component_log_probs(flat, self.means.to(z.dtype), self.scale_tril.to(z.dtype))
        return chain_rule(per_dim, self.log_weights.to(z.dtype)).view_as(z)

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) per example, ``[B]`` nats."""
        return self.log_prob_elements(z).flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, device: torch.device | str | None = None) -> Tensor:
        """z ~ p(z), ``[n, *latent_shape]`` (global RNG)."""
        device = self.means.device if device is None else device
        d = self.means.shape[1]
        if not bool(self.fitted):
            return torch.randn(n, *self.latent_shape, device=device)
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True)
        eps = torch.randn(n, d, 1, device=self.means.device, dtype=self.means.dtype)
        z = self.means[k] + (self.scale_tril[k] @ eps).squeeze(-1)
        return z.view(n, *self.latent_shape).to(device)

    @torch.no_grad()
    def fit(self, codes: Tensor, seed: int = 0, reg: float = REG_COVAR) -> list[float]:
        """Fit the mixture to ``codes`` ``[N, *latent_shape]`` or ``[N, D]`` (N >= K) by k-means
        then EM (module docstring); returns the mean log-likelihood of the codes (nats per code)
        after each EM step."""
        x = codes.flatten(1).double()
        n, d = x.shape
        k = self.n_components
        if d != self.means.shape[1] or n < k:
            raise ValueError(
                f"fit needs at least {k} codes of {self.means.shape[1]} numbers, "
                f"got {tuple(x.shape)}"
            )
        generator = torch.Generator().manual_seed(seed)
        means = x[torch.randperm(n, generator=generator)[:k].to(x.device)]
        for _ in range(KMEANS_STEPS):
            assign = torch.cdist(x, means).argmin(1)
            for j in range(k):
                members = x[assign == j]
                if len(members):
                    means[j] = members.mean(0)
        resp = torch.nn.functional.one_hot(torch.cdist(x, means).argmin(1), k).double()
        history: list[float] = []
        for _ in range(EM_STEPS + 1):
            # M-step from the responsibilities, then the E-step under the new parameters
            counts = resp.sum(0) + 1e-10
            weights = counts / n
            means = (resp.T @ x) / counts[:, None]
            centred = x[None] - means[:, None]  # [K, N, D]
            cov = torch.einsum("kn,knd,kne->kde", resp.T, centred, centred) / counts[:, None, None]
            cov = cov + reg * torch.eye(d, dtype=x.dtype, device=x.device)
            tril = torch.linalg.cholesky(cov)
            joint = component_log_probs(x, means, tril).sum(-1) + weights.log()  # [N, K]
            history.append(float(torch.logsumexp(joint, 1).mean()))
            resp = torch.softmax(joint, 1)
        self.log_weights.copy_(weights.log())
        self.means.copy_(means)
        self.scale_tril.copy_(tril)
        self.fitted.fill_(True)
        return history
