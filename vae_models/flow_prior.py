"""An autoregressive-flow prior over a spatial latent (Chen et al. 2016, VLAE, equations 12–14).

The prior p(z) over ``z ∈ ℝ^{C×H×W}`` is the density of an autoregressive flow in raster order over
the H·W positions. A shallow PixelCNN f (:class:`ar_models.masked_conv.SpatialNet`: a 3×3 type-A
conv, :data:`N_LAYERS` type-B residual blocks, then two 1×1 type-B convs) gives at every position
i a shift μ_i(z_<i) and a log-scale s_i(z_<i) = tanh(·) ∈ (−1, 1) for each channel, and

    ε_i = (z_i − μ_i(z_<i)) · exp(−s_i(z_<i)),      ε ~ N(0, I),

    log p(z) = log N(ε; 0, I) + log |det ∂ε/∂z| = Σ_i [log N(ε_i; 0, 1) − s_i]     (nats).

The Jacobian ∂ε/∂z is triangular in raster order (the masks are spatial, so ε_i reads z_<i and z_i
only) with diagonal exp(−s_i); hence the log-determinant −Σ s_i. Within one position the C channels
are conditionally independent given the earlier positions.

Directions: the density (z → ε) is one network pass for all positions (the MAF form of VLAE's
equation 13, used in the ELBO's log p(z)); sampling (ε → z, :meth:`inverse`) is sequential, one
position at a time through the raster sampler of :mod:`ar_models.sampling`. It starts as the
identity flow (last conv zero: μ = 0, s = 0, p(z) = N(0, I)), not from the handout, for a stable
start.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ar_models.masked_conv import SpatialNet
from ar_models.sampling import CropStepper, IncrementalNet, raster_sample
from vae_models.gaussians import LOG_2PI
from vae_models.priors import Prior

#: Residual blocks of the flow's PixelCNN.
N_LAYERS = 3


class AutoregressiveFlowPrior(Prior):
    """p(z) for ``z: [B, C, H, W]`` by the autoregressive flow above.

    Args:
        channels: C, latent channels.
        height, width: spatial size of the latent (8×8 in HW3 §2).
        n_filters: width of the PixelCNN's residual stream.
    """

    def __init__(self, channels: int, height: int = 8, width: int = 8, n_filters: int = 64) -> None:
        super().__init__((channels, height, width))
        self.net = SpatialNet(channels, 2 * channels, n_filters, N_LAYERS, 3, first_kernel=3)
        last = self.net.layers[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def shift_log_scale(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """μ(z_<i) and s(z_<i) = tanh(·) at every position: two ``[B, C, H, W]`` tensors."""
        mu, raw = self.net(z).chunk(2, dim=1)
        return mu.contiguous(), torch.tanh(raw).contiguous()

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z → (ε, log|det ∂ε/∂z|): ε ``[B, C, H, W]`` and the log-determinant ``[B]`` (nats)."""
        mu, s = self.shift_log_scale(z)
        return (z - mu) * torch.exp(-s), -s.flatten(1).sum(-1)

    def log_prob_elements(self, z: Tensor) -> Tensor:
        """log p(z_{c,i} | z_<i) = log N(ε_{c,i}; 0, 1) − s_{c,i} per element, ``[B, C, H, W]``."""
        mu, s = self.shift_log_scale(z)
        eps = (z - mu) * torch.exp(-s)
        return -0.5 * (LOG_2PI + eps**2) - s

    @torch.no_grad()
    def inverse(self, eps: Tensor, cached: bool = True) -> Tensor:
        """ε → z: z_i = μ_i(z_<i) + exp(s_i(z_<i)) · ε_i, position by position in raster order
        (``cached=False``: the naive reference, one pass on the crop each position sees)."""
        n, channels, height, width = eps.shape
        if cached:
            stepper = IncrementalNet(self.net.layers, n, height, width)
        else:
            stepper = CropStepper(self.net, torch.zeros_like(eps), self.net.receptive_radius)

        def draw(out: Tensor, row: int, col: int) -> tuple[Tensor, Tensor]:
            mu, s = out[:, :channels], torch.tanh(out[:, channels:])
            z = mu + torch.exp(s) * eps[:, :, row, col]
            return z, z

        return raster_sample(stepper, height, width, draw)

    def draw(self, eps: Tensor, generator: torch.Generator | None) -> Tensor:
        return self.inverse(eps)
