"""A Gaussian-mixture prior whose parameters are set by EM on latent codes, not by gradients.

With the latent flattened to z ∈ ℝ^D (as ``z.flatten(1)``), K full-covariance components,

    p(z) = Σ_k π_k N(z; m_k, L_k L_kᵀ)          (L_k lower-triangular, positive diagonal),

held in buffers (saved in checkpoints, never trained). Until :meth:`FittedMixturePrior.fit` has
run, p(z) = N(0, I) exactly.

Per-element log-densities (so that the VAEs' per-channel KLs add up): within component k the
chain-rule factor of element d is the conditional Gaussian log N(z_d | z_<d) =
log N(ε_{k,d}; 0, 1) − log L_k[d, d] with ε_k = L_k⁻¹ (z − m_k), and the mixture's factor weights
these by the component posterior given z_<d (:func:`chain_rule`): with L_{k,d} those factors and
A_{k,d} = log π_k + Σ_{d' < d} L_{k,d'},

    log p(z_d | z_<d) = logsumexp_k (A_{k,d} + L_{k,d}) − logsumexp_k A_{k,d},

which telescope to log p(z). Until the first fit the KL is the analytic one against N(0, I).
Everything is in nats.

Fitting (:meth:`FittedMixturePrior.fit`, in float64): k-means (Lloyd, from K distinct points
drawn with a seeded generator) gives the initial means, weights and covariances; then EM,
maximising Σ_n log p(z_n) over the mixtures; ``reg`` is added to every covariance's diagonal.
"""

from __future__ import annotations

import math

import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from ar_models.errors import check
from vae_models.gaussians import LOG_2PI, kl_std_normal_per_dim
from vae_models.priors import Prior

KMEANS_STEPS = 20
EM_STEPS = 30
REG_COVAR = 1e-4


def chain_rule(per_dim: Tensor, log_weights: Tensor) -> Tensor:
    """The mixture's factors log p(z_d | z_<d), ``[B, D]``, from the components' factors
    L_{k,d} = log p_k(z_d | z_<d) ``[B, K, D]`` and log π ``[K]`` (module docstring)."""
    before = log_weights[None, :, None] + torch.cumsum(per_dim, 2) - per_dim  # A_{k,d}
    return torch.logsumexp(before + per_dim, 1) - torch.logsumexp(before, 1)


def component_log_probs(z: Tensor, means: Tensor, scale_tril: Tensor) -> Tensor:
    """log N(z_d | z_<d) within each component, ``[B, K, D]``, for ``z`` [B, D]."""
    centred = (z[:, None, :] - means[None]).permute(1, 2, 0)  # [K, D, B]
    eps = torch.linalg.solve_triangular(scale_tril, centred, upper=False)  # [K, D, B]
    log_diag = torch.diagonal(scale_tril, dim1=1, dim2=2).log()  # [K, D]
    return (-0.5 * (LOG_2PI + eps**2) - log_diag[:, :, None]).permute(2, 0, 1)


class FittedMixturePrior(Prior):
    """p(z) for ``z: [B, *latent_shape]`` (module docstring): N(0, I) until fitted, then a
    K-component full-covariance Gaussian mixture."""

    def __init__(self, latent_shape: tuple[int, ...], n_components: int) -> None:
        super().__init__(latent_shape)
        check(integer=True, minimum=1, n_components=n_components)
        d = math.prod(self.shape)
        k = n_components
        self.register_buffer("log_weights", torch.full((k,), -math.log(k)))
        self.register_buffer("means", torch.zeros(k, d))
        self.register_buffer("scale_tril", torch.eye(d).repeat(k, 1, 1))
        self.register_buffer("fitted", torch.tensor(False))
        self.is_fitted = False  # the buffer's value, read without a device synchronisation

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args)
        self.is_fitted = bool(self.fitted)

    @property
    def n_components(self) -> int:
        return self.log_weights.shape[0]

    def log_prob_elements(self, z: Tensor) -> Tensor:
        if not self.is_fitted:
            return -0.5 * (LOG_2PI + z**2)
        flat = z.flatten(1)
        per_dim = component_log_probs(flat, self.means.to(z.dtype), self.scale_tril.to(z.dtype))
        return chain_rule(per_dim, self.log_weights.to(z.dtype)).view_as(z)

    def kl_elements(self, z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        if not self.is_fitted:
            return kl_std_normal_per_dim(mu, logvar)
        return super().kl_elements(z, mu, logvar)

    def draw(self, eps: Tensor, generator: torch.Generator | None) -> Tensor:
        if not self.is_fitted:
            return eps
        k = torch.multinomial(self.log_weights.exp(), len(eps), True, generator=generator)
        eps = eps.flatten(1)[:, :, None].to(self.means.dtype)
        z = self.means[k] + (self.scale_tril[k] @ eps).squeeze(-1)
        return z.view(len(eps), *self.shape).to(self.anchor.dtype)

    def fit_to_posteriors(self, posteriors: Tensor, steps: int, seed: int = 0) -> list[float]:
        """EM on the posterior means ``posteriors[:, 0]`` (:meth:`fit`; ``steps`` unused); with
        fewer posteriors than components a warning, and the prior is left as it is."""
        if len(posteriors) < self.n_components:
            rank_zero_warn(
                f"{len(posteriors)} posteriors, fewer than the {self.n_components} components of "
                "the fitted prior; not fitted"
            )
            return []
        return self.fit(posteriors[:, 0], seed)

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
        self.is_fitted = True
        return history
