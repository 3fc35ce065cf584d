"""How a pixel model draws the C channels of pixel i from its network's features φ_i there.

Both heads are exact distributions over {0..K-1}^C given φ_i, picked by ``channel_model``:

* ``"factorised"`` (:class:`FactorisedHead`, HW1 §3 equation 2): the channels are independent
  given the earlier pixels, p(x_i | φ_i) = ∏_c softmax(φ_{i,c})[x_{i,c}], φ_i with C·K numbers;
* ``"made"`` (:class:`MADEHead`, equations 3-5): autoregressive in the order 0..C-1 (R → G → B),
  p(x_i | φ_i) = ∏_c p(x_{i,c} | x_{i,<c}, φ_i), a MADE over the channels conditioned on φ_i.

Each head maps features ``[B, F, H, W]`` to logits ``[B, C, H, W, K]`` and to -log p in nats per
image, and draws one pixel ``LongTensor[n, C]`` from features ``[n, F]``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ar_models.errors import check
from ar_models.made import MADENet

ChannelModel = Literal["factorised", "made"]
CHANNEL_MODELS = ("factorised", "made")


class FactorisedHead(nn.Module):
    """p(x_i | φ_i) = ∏_c softmax(φ_{i,c})[x_{i,c}]; channel c's K logits at c·K .. c·K+K-1."""

    def __init__(self, channels: int, n_categories: int) -> None:
        super().__init__()
        self.channels, self.n_categories = channels, n_categories
        self.features = channels * n_categories

    def _logits(self, phi: Tensor) -> Tensor:  # [B, C·K, H, W] -> [B, C, K, H, W]
        b, _, h, w = phi.shape
        return phi.reshape(b, self.channels, self.n_categories, h, w)

    def logits(self, t: Tensor, phi: Tensor) -> Tensor:
        return self._logits(phi).permute(0, 1, 3, 4, 2)

    def nll(self, t: Tensor, phi: Tensor) -> Tensor:
        logits = self._logits(phi).transpose(1, 2)  # [B, K, C, H, W]
        return F.cross_entropy(logits, t, reduction="none").sum(dim=(1, 2, 3))

    def draw(self, phi: Tensor, generator: torch.Generator | None) -> Tensor:
        n = phi.shape[0]
        probs = F.softmax(phi.reshape(n * self.channels, self.n_categories), dim=-1)
        return torch.multinomial(probs, 1, generator=generator).view(n, self.channels)


class MADEHead(nn.Module):
    """p(x_i | φ_i) = ∏_c p(x_{i,c} | x_{i,<c}, φ_i): a :class:`~ar_models.made.MADENet` over the
    C channels with auxiliary input φ_i (``features`` numbers)."""

    def __init__(
        self, channels: int, n_categories: int, features: int, hidden_sizes: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.channels, self.n_categories, self.features = channels, n_categories, features
        self.made = MADENet(channels, n_categories, list(hidden_sizes), aux_dim=features)

    def _rows(self, t: Tensor, phi: Tensor) -> tuple[Tensor, Tensor]:
        """Pixels as rows: ``t`` as ``[B·H·W, C]``, φ as ``[B·H·W, features]``."""
        return t.permute(0, 2, 3, 1).flatten(0, 2), phi.permute(0, 2, 3, 1).flatten(0, 2)

    def logits(self, t: Tensor, phi: Tensor) -> Tensor:
        b, _, h, w = phi.shape
        logits = self.made(*self._rows(t, phi))  # [B·H·W, C, K]
        return logits.view(b, h, w, self.channels, self.n_categories).permute(0, 3, 1, 2, 4)

    def nll(self, t: Tensor, phi: Tensor) -> Tensor:
        return -self.made.log_prob(*self._rows(t, phi)).view(t.shape[0], -1).sum(dim=1)

    def draw(self, phi: Tensor, generator: torch.Generator | None) -> Tensor:
        # the network ran once for this pixel; only the small MADE runs once per channel
        return self.made.sample(phi.shape[0], aux=phi, generator=generator)


def channel_head(
    channel_model: str,
    channels: int,
    n_categories: int,
    feature_dim: int,
    made_hidden_sizes: tuple[int, ...],
) -> FactorisedHead | MADEHead:
    """The head that ``channel_model`` names; the MADE reads ``feature_dim`` features."""
    check(channel_model=channel_model, choices=CHANNEL_MODELS)
    if channel_model == "factorised":
        return FactorisedHead(channels, n_categories)
    check(integer=True, minimum=1, feature_dim=feature_dim)
    return MADEHead(channels, n_categories, feature_dim, tuple(made_hidden_sizes))
