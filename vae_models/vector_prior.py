"""An autoregressive prior over a latent *vector* (a 1×1 latent), with a MADE.

For ``z ∈ ℝ^{C×1×1}`` the spatial flow of :mod:`vae_models.flow_prior` has no earlier positions to
read, so it would be a fixed diagonal Gaussian. Here the prior is autoregressive over the C
numbers instead: p(z) = ∏_d p(z_d | z_<d), the parameters of every conditional coming from one
MADE pass (Germain et al. 2015; masks as in :mod:`ar_models.made`, z_d of degree d).

* ``n_components`` K = 1: the affine autoregressive flow (VLAE, Chen et al. 2016, equations
  12–14, over the channels), with shift μ_d(z_<d) and log-scale s_d(z_<d) = tanh(·) ∈ (−1, 1),

      ε_d = (z_d − μ_d) · exp(−s_d),   ε ~ N(0, I),   log p(z) = Σ_d [log N(ε_d; 0, 1) − s_d];

  the Jacobian ∂ε/∂z is triangular with diagonal exp(−s_d). Starts as the identity flow
  (p(z) = N(0, I)).
* K > 1: each conditional is a mixture of K Gaussians (as RNADE, Uria et al. 2013),
  p(z_d | z_<d) = Σ_k π_{d,k} N(z_d; μ_{d,k}, σ²_{d,k}), with log σ soft-clamped into [−7, 3];
  not a flow, and strictly more expressive (K = 1 conditionals are single Gaussians). Starts with
  the K means of every conditional spread evenly over [−2, 2] and σ = 1.

Units: nats. :meth:`log_prob_elements` gives log p(z_d | z_<d) per number, so the per-channel KL
terms of the VAEs split log p(z) exactly by the chain rule. The density is one network pass;
sampling is C passes, one per number, in the order z_1, …, z_C.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ar_models.errors import ModelConfigError, check
from ar_models.made import MaskedLinear, hidden_degrees
from vae_models.gaussians import LOG_2PI, soft_clamp
from vae_models.priors import Prior

#: Range of the mixture components' log σ (K > 1).
LOG_SCALE_RANGE = (-7.0, 3.0)
#: The K > 1 components' initial means are spread evenly over ±this.
INIT_MEAN_SPREAD = 2.0


class VectorARPrior(Prior):
    """p(z) for ``z: [B, C, 1, 1]``, autoregressive over the C numbers (module docstring).

    Args:
        channels: C, the latent's length.
        hidden: width of each masked hidden layer (ReLU).
        n_hidden: masked hidden layers (0: the conditionals' parameters are linear in z_<d).
        n_components: K, Gaussians per conditional (1: the affine autoregressive flow).
    """

    def __init__(
        self, channels: int, hidden: int = 256, n_hidden: int = 2, n_components: int = 1
    ) -> None:
        super().__init__((channels, 1, 1))
        check(integer=True, minimum=1, channels=channels, hidden=hidden, n_components=n_components)
        check(integer=True, minimum=0, n_hidden=n_hidden)
        self.n_components = n_components
        #: parameters per component and number: K = 1 [μ, s]; K > 1 [logit, μ, log σ]
        self.n_params = 2 if n_components == 1 else 3
        degree = torch.arange(1, channels + 1)  # z_d has degree d
        layers: list[nn.Module] = []
        prev = degree
        for deg in hidden_degrees([hidden] * n_hidden, channels, 1, None):
            layers += [MaskedLinear(len(prev), len(deg), deg[:, None] >= prev[None, :]), nn.ReLU()]
            prev = deg
        # outputs parameter-major (self.n_params of them), each K·C (k-major)
        out_degree = degree.repeat(self.n_params * n_components)
        last = MaskedLinear(len(prev), len(out_degree), out_degree[:, None] > prev[None, :])
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        if n_components > 1:
            with torch.no_grad():
                spread = torch.linspace(-INIT_MEAN_SPREAD, INIT_MEAN_SPREAD, n_components)
                last.bias.view(3, n_components, channels)[1] = spread[:, None]
        self.net = nn.Sequential(*layers, last)

    def _check(self, z: Tensor) -> None:
        if z.dim() != 4 or tuple(z.shape[1:]) != self.shape:
            raise ValueError(f"expected z of shape [B, {self.shape}], got {tuple(z.shape)}")

    def _params(self, z: Tensor) -> Tensor:
        """The MADE's outputs ``[B, n_params, K, C]``; entry d depends on z_<d only."""
        self._check(z)
        return self.net(z.flatten(1)).view(len(z), self.n_params, self.n_components, self.shape[0])

    def shift_log_scale(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The flow's (K = 1) μ(z_<d) and s(z_<d) = tanh(·) for every d, two ``[B, C, 1, 1]``."""
        if self.n_components != 1:
            raise ModelConfigError("shift_log_scale is the K = 1 flow's; this prior has K > 1")
        out = self._params(z)
        return out[:, 0, 0].view_as(z), torch.tanh(out[:, 1, 0]).view_as(z)

    def mixture_params(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Every conditional's (log π, μ, log σ), each ``[B, K, C]`` (K = 1: log π = 0, the flow's
        μ and s)."""
        out = self._params(z)
        if self.n_components == 1:
            return torch.zeros_like(out[:, 0]), out[:, 0], torch.tanh(out[:, 1])
        log_pi = torch.log_softmax(out[:, 0], dim=1)
        return log_pi, out[:, 1], soft_clamp(out[:, 2], *LOG_SCALE_RANGE)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """The flow (K = 1) z → (ε, log|det ∂ε/∂z|): ε ``[B, C, 1, 1]``, log-det ``[B]`` (nats)."""
        mu, s = self.shift_log_scale(z)
        return (z - mu) * torch.exp(-s), -s.flatten(1).sum(-1)

    def log_prob_elements(self, z: Tensor) -> Tensor:
        """log p(z_d | z_<d) per number, ``[B, C, 1, 1]`` nats; the sum is log p(z)."""
        log_pi, mu, log_sigma = self.mixture_params(z)
        flat = z.flatten(1)[:, None, :]  # [B, 1, C]
        log_n = -0.5 * (LOG_2PI + ((flat - mu) * torch.exp(-log_sigma)) ** 2) - log_sigma
        return torch.logsumexp(log_pi + log_n, dim=1).view_as(z)

    @torch.no_grad()
    def inverse(self, eps: Tensor) -> Tensor:
        """The flow's (K = 1) ε → z: z_d = μ_d(z_<d) + exp(s_d(z_<d)) · ε_d, d = 1, …, C."""
        self._check(eps)
        z = torch.zeros_like(eps)
        for d in range(self.shape[0]):
            mu, s = self.shift_log_scale(z)
            z[:, d] = mu[:, d] + torch.exp(s[:, d]) * eps[:, d]
        return z

    def draw(self, eps: Tensor, generator: torch.Generator | None) -> Tensor:
        """z from ε ~ N(0, I), number by number: the flow (K = 1) through :meth:`inverse`;
        K > 1 a component k ~ π_d, then z_d = μ_{d,k} + σ_{d,k} ε_d, per conditional."""
        if self.n_components == 1:
            return self.inverse(eps)
        z = torch.zeros_like(eps)
        rows = torch.arange(len(eps), device=eps.device)
        for d in range(self.shape[0]):
            log_pi, mu, log_sigma = self.mixture_params(z)
            k = torch.multinomial(log_pi[:, :, d].exp(), 1, generator=generator)[:, 0]
            z[:, d, 0, 0] = mu[rows, k, d] + torch.exp(log_sigma[rows, k, d]) * eps[:, d, 0, 0]
        return z
