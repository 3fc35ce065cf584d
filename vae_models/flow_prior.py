"""An autoregressive-flow prior over a spatial latent (Chen et al. 2016, VLAE, equations 12–14).

The prior p(z) over ``z ∈ ℝ^{C×H×W}`` is the density of an autoregressive flow in raster order over
the H·W positions. A shallow PixelCNN f (:class:`ar_models.pixelcnn.SpatialNet`: a 3×3 type-A conv,
``n_blocks`` = 3 type-B residual blocks, then two 1×1 type-B convs) gives at every position i a
shift μ_i(z_<i) and a log-scale s_i(z_<i) = tanh(·) ∈ (−1, 1) for each channel, and

    ε_i = (z_i − μ_i(z_<i)) · exp(−s_i(z_<i)),      ε ~ N(0, I),

    log p(z) = log N(ε; 0, I) + log |det ∂ε/∂z| = Σ_i [log N(ε_i; 0, 1) − s_i]     (nats).

The Jacobian ∂ε/∂z is triangular in raster order (the masks are spatial, so ε_i reads z_<i and z_i
only) with diagonal exp(−s_i); hence the log-determinant −Σ s_i. Within one position the C channels
are conditionally independent given the earlier positions.

Directions: the density (z → ε) is the cheap one, one network pass for all positions (the MAF
form of VLAE's equation 13, used in the ELBO's log p(z)); sampling (ε → z, :meth:`inverse`) is
sequential, one pass per position (H·W = 64 for an 8×8 latent), each on the crop the position
can see.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ar_models.errors import ModelConfigError
from ar_models.pixelcnn import SpatialNet

LOG_2PI = math.log(2.0 * math.pi)


class AutoregressiveFlowPrior(nn.Module):
    """p(z) for ``z: [B, C, H, W]`` by the autoregressive flow above.

    Args:
        channels: C, latent channels.
        height, width: spatial size of the latent (8×8 in HW3 §2).
        n_filters: width of the PixelCNN's residual stream.
        n_blocks: type-B residual blocks (3).
        zero_init: start as the identity flow (last conv zero, so μ = 0, s = 0 and p(z) = N(0, I));
            not from the handout, for a stable start.
    """

    def __init__(
        self,
        channels: int,
        height: int = 8,
        width: int = 8,
        n_filters: int = 64,
        n_blocks: int = 3,
        zero_init: bool = True,
    ) -> None:
        super().__init__()
        if min(channels, height, width, n_filters) < 1 or n_blocks < 0:
            raise ModelConfigError(
                f"need channels, height, width, n_filters >= 1 and n_blocks >= 0, got {channels}, "
                f"{height}, {width}, {n_filters}, {n_blocks}"
            )
        self.shape = (channels, height, width)
        self.net = SpatialNet(
            channels,
            2 * channels,
            n_filters,
            n_blocks,
            bottleneck=max(n_filters // 2, 1),
            first_kernel=3,
            block_kernel=3,
        )
        if zero_init:
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
        """log p(z_{c,i} | z_<i) = log N(ε_{c,i}; 0, 1) − s_{c,i} per element, ``[B, C, H, W]``;
        the sum over elements is log p(z)."""
        mu, s = self.shift_log_scale(z)
        eps = (z - mu) * torch.exp(-s)
        return -0.5 * (LOG_2PI + eps**2) - s

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) per example, ``[B]`` nats."""
        return self.log_prob_elements(z).flatten(1).sum(-1)

    @torch.no_grad()
    def inverse(self, eps: Tensor) -> Tensor:
        """ε → z: z_i = μ_i(z_<i) + exp(s_i(z_<i)) · ε_i, position by position in raster order."""
        z = torch.zeros_like(eps)
        channels = self.shape[0]
        for row in range(eps.shape[2]):
            for col in range(eps.shape[3]):
                out = self.net.forward_at(z, row, col)  # [B, 2C]
                mu, s = out[:, :channels], torch.tanh(out[:, channels:])
                z[:, :, row, col] = mu + torch.exp(s) * eps[:, :, row, col]
        return z

    @torch.no_grad()
    def sample(self, n: int, device: torch.device | str | None = None) -> Tensor:
        """``n`` draws z ~ p(z), ``[n, C, H, W]``."""
        return self.inverse(torch.randn(n, *self.shape, device=device))
