"""HW1 §2: an autoregressive model of two categorical variables, p(x1, x2) = p(x1) p(x2 | x1).

p(x1) = softmax(θ)_{x1}, θ ∈ R^K (the §1 histogram); p(x2 | x1) = softmax(MLP(enc(x1)))_{x2}, a
K-way softmax whose logits an MLP computes from an encoding of x1:

* ``one_hot``: e_{x1} ∈ {0, 1}^K (the handout's; every row its own first-layer weights);
* ``cosine``: the first ``n_frequencies`` DCT-II basis functions cos(π f (x1 + ½) / K), f = 1..F
  (F = K - 1 spans the same functions of x1 as one-hot; smaller F is a smoothness prior in x1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ar_models.base import DensityModel
from ar_models.errors import check

ENCODINGS = ("one_hot", "cosine")


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers ``sizes[0] → sizes[1] → ... → sizes[-1]``, ReLU (and dropout) between."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def dct_table(n_categories: int, n_frequencies: int) -> Tensor:
    """``[K, F]`` table of cos(π f (x + ½) / K) for x = 0..K-1, f = 1..F (DCT-II basis)."""
    freq = torch.arange(1, n_frequencies + 1, dtype=torch.float64)
    centres = torch.arange(n_categories, dtype=torch.float64) + 0.5
    return torch.cos(torch.pi * centres[:, None] * freq[None, :] / n_categories).float()


class X1Encoder(nn.Module):
    """Encodes ``x1: LongTensor[B]`` in {0..K-1} as ``[B, dim]`` floats (see module docstring)."""

    def __init__(self, encoding: str, n_categories: int, n_frequencies: int) -> None:
        super().__init__()
        check(encoding=encoding, choices=ENCODINGS)
        check(integer=True, minimum=1, n_frequencies=n_frequencies)
        n_frequencies = min(n_frequencies, n_categories - 1)  # K - 1 cosines: the full basis
        self.n_categories = n_categories
        self.register_buffer(
            "cosines", dct_table(n_categories, n_frequencies) if encoding == "cosine" else None
        )
        self.dim = n_frequencies if encoding == "cosine" else n_categories

    def forward(self, x1: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        if self.cosines is not None:
            return self.cosines[x1].to(dtype)
        return F.one_hot(x1, self.n_categories).to(dtype)


class ARMLP(DensityModel):
    """p(x1, x2) = p(x1) p(x2 | x1) over ``LongTensor[B, 2]`` in {0..K-1}.

    ``nll(x) = -log p(x1) - log p(x2 | x1)`` in nats; bits/dim divide by 2 ln 2. The defaults are
    those chosen on validation data for HW1 §2 (``configs/hw1/ar_mlp_2d.yaml``). With dropout, the
    density is that of the network in eval mode (as in validation, test and sampling callbacks).

    Args:
        n_categories: K, categories of each variable.
        hidden_sizes: widths of the hidden layers of the MLP of p(x2 | x1) (ReLU); [256, 256].
        encoding: how x1 enters the MLP: ``one_hot`` or ``cosine``.
        n_frequencies: number of cosines F (``encoding='cosine'`` only), ≥ 1; more than K - 1
            (the full basis) are capped at K - 1.
        dropout: dropout after each hidden layer (0 for none).
        lr: Adam learning rate.
    """

    def __init__(
        self,
        n_categories: int = 200,
        hidden_sizes: list[int] | None = None,
        encoding: str = "cosine",
        n_frequencies: int = 16,
        dropout: float = 0.3,
        lr: float = 1e-3,
    ) -> None:
        super().__init__(lr=lr)
        self.save_hyperparameters()
        hidden = list(hidden_sizes) if hidden_sizes is not None else [256, 256]
        check(integer=True, minimum=2, n_categories=n_categories)
        check(integer=True, minimum=1, **{f"hidden_sizes[{i}]": h for i, h in enumerate(hidden)})
        check(minimum=0, below=1, dropout=dropout)
        self.n_categories = n_categories
        self.x1_logits = nn.Parameter(torch.zeros(n_categories))
        self.encoder = X1Encoder(encoding, n_categories, n_frequencies)
        self.conditional = mlp([self.encoder.dim, *hidden, n_categories], dropout)

    @property
    def n_dims(self) -> int:
        return 2

    def log_p_x1(self) -> Tensor:
        """log p(x1) for every x1, ``[K]``, nats."""
        return F.log_softmax(self.x1_logits, dim=0)

    def log_p_x2_given_x1(self, x1: Tensor) -> Tensor:
        """log p(x2 | x1) for every x2, ``[B, K]``, nats."""
        return F.log_softmax(self.conditional(self.encoder(x1, self.x1_logits.dtype)), dim=-1)

    def nll(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != 2:
            raise ValueError(f"ARMLP expects a LongTensor[B, 2], got shape {tuple(x.shape)}")
        x1, x2 = x[:, 0], x[:, 1]
        log_x2 = self.log_p_x2_given_x1(x1).gather(1, x2.unsqueeze(1)).squeeze(1)
        return -(self.log_p_x1()[x1] + log_x2)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """x1 ~ p(x1), then x2 ~ p(x2 | x1); ``LongTensor[n, 2]``."""
        x1 = torch.multinomial(self.log_p_x1().exp(), n, replacement=True)
        x2 = torch.multinomial(self.log_p_x2_given_x1(x1).exp(), 1).squeeze(1)
        return torch.stack([x1, x2], dim=1)
