"""MADE (Germain et al. 2015) over D categorical variables with K categories each.

p(x | a) = ∏_d p(x_{o_d} | x_{o_1}, ..., x_{o_{d-1}}, a), each factor a K-way softmax, where
``o = ordering`` is the generation order and ``a`` an optional auxiliary (conditioning) vector that
every output may see. Inputs are one-hot (D·K units). Masks follow the paper's degree rule: input
units of variable v have degree m(v) = 1 + position of v in the ordering; a hidden unit of degree
m_h sees inputs of degree ≤ m_h; the output of variable v sees hidden units of degree < m(v).
Auxiliary inputs have degree 0, so they reach every output (also through a direct linear path).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ar_models.base import DensityModel
from ar_models.errors import ModelConfigError


class MaskedLinear(nn.Linear):
    """``y = x (W ⊙ M)ᵀ + b`` with a fixed binary mask ``M`` of shape ``[out, in]``."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def check_ordering(ordering: Sequence[int] | None, n_vars: int) -> list[int]:
    """The generation order as a list, identity when ``None``; must be a permutation of 0..D-1."""
    order = list(range(n_vars)) if ordering is None else [int(v) for v in ordering]
    if sorted(order) != list(range(n_vars)):
        raise ModelConfigError(f"ordering must be a permutation of 0..{n_vars - 1}, got {ordering}")
    return order


def hidden_degrees(
    sizes: Sequence[int], n_vars: int, lowest: int, generator: torch.Generator | None
) -> list[Tensor]:
    """Degrees of each hidden layer, in ``[lowest, D-1]``: cyclic (every degree present) when
    ``generator`` is None, else drawn as in the paper, ``U{min degree of layer below, .., D-1}``."""
    degrees = []
    low = lowest
    for size in sizes:
        if generator is None:
            span = max(n_vars - 1 - low + 1, 1)
            deg = low + torch.arange(size) % span
        else:
            deg = torch.randint(low, max(n_vars - 1, low) + 1, (size,), generator=generator)
        degrees.append(deg.clamp(max=max(n_vars - 1, low)))
        low = int(deg.min())
    return degrees


class MADENet(nn.Module):
    """The MADE network: one-hot ``x ∈ {0..K-1}^D`` (and auxiliary ``a``) → logits ``[B, D, K]``.

    Args:
        n_vars: D, number of variables.
        n_categories: K, categories per variable.
        hidden_sizes: widths of the masked hidden layers (ReLU).
        ordering: generation order, a permutation of 0..D-1 (identity by default).
        aux_dim: size of the conditioning vector ``a`` (0 for none).
        mask_seed: ``None`` for deterministic cyclic hidden degrees, else the seed of random ones.
        dropout: dropout probability after each hidden ReLU (0 for none; masks are unaffected).
    """

    def __init__(
        self,
        n_vars: int,
        n_categories: int,
        hidden_sizes: Sequence[int] = (512, 512),
        ordering: Sequence[int] | None = None,
        aux_dim: int = 0,
        mask_seed: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ModelConfigError(f"dropout must be in [0, 1), got {dropout}")
        if n_vars < 1 or n_categories < 2:
            raise ModelConfigError(
                f"need n_vars >= 1 and n_categories >= 2, got {n_vars}, {n_categories}"
            )
        if any(h < 1 for h in hidden_sizes) or aux_dim < 0:
            raise ModelConfigError(
                f"hidden sizes must be >= 1 and aux_dim >= 0: {hidden_sizes}, {aux_dim}"
            )
        self.n_vars, self.n_categories, self.aux_dim = n_vars, n_categories, aux_dim
        self.ordering = check_ordering(ordering, n_vars)
        position = torch.empty(n_vars, dtype=torch.long)
        position[torch.tensor(self.ordering)] = torch.arange(n_vars)
        var_degree = position + 1  # m(v) in 1..D
        self.register_buffer("position", position)

        in_degree = torch.cat(
            [var_degree.repeat_interleave(n_categories), torch.zeros(aux_dim).long()]
        )
        out_degree = var_degree.repeat_interleave(n_categories)
        generator = None if mask_seed is None else torch.Generator().manual_seed(mask_seed)
        lowest = 0 if aux_dim > 0 else 1
        layers: list[nn.Module] = []
        prev = in_degree
        for deg in hidden_degrees(hidden_sizes, n_vars, lowest, generator):
            layers += [MaskedLinear(len(prev), len(deg), deg[:, None] >= prev[None, :]), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = deg
        layers.append(MaskedLinear(len(prev), len(out_degree), out_degree[:, None] > prev[None, :]))
        self.net = nn.Sequential(*layers)
        self.aux_to_out = nn.Linear(aux_dim, n_vars * n_categories, bias=False) if aux_dim else None

    def forward(self, x: Tensor, aux: Tensor | None = None) -> Tensor:
        """Logits ``[B, D, K]`` of every conditional, for ``x: LongTensor[B, D]``."""
        return self.forward_one_hot(F.one_hot(x, self.n_categories).to(self._dtype()), aux)

    def forward_one_hot(self, one_hot: Tensor, aux: Tensor | None = None) -> Tensor:
        """Logits ``[B, D, K]`` from float inputs ``[B, D, K]`` (one-hot rows for real data; any
        floats, e.g. to take gradients with respect to the inputs)."""
        inputs = one_hot.flatten(1)
        self._check_aux(aux)
        if self.aux_dim:
            inputs = torch.cat([inputs, aux], dim=1)
        out = self.net(inputs)
        if self.aux_to_out is not None:
            out = out + self.aux_to_out(aux)
        return out.view(-1, self.n_vars, self.n_categories)

    def _check_aux(self, aux: Tensor | None) -> None:
        if self.aux_dim and (aux is None or aux.shape[-1] != self.aux_dim):
            raise ValueError(f"MADENet needs an auxiliary input of size {self.aux_dim}")
        if not self.aux_dim and aux is not None:
            raise ValueError("MADENet was built without an auxiliary input (aux_dim=0)")

    def _dtype(self) -> torch.dtype:
        return self.net[0].weight.dtype

    def log_prob(self, x: Tensor, aux: Tensor | None = None) -> Tensor:
        """log p(x | a) in nats, shape ``[B]``."""
        logp = F.log_softmax(self.forward(x, aux), dim=-1)
        return logp.gather(-1, x.unsqueeze(-1)).squeeze(-1).sum(-1)

    @torch.no_grad()
    def sample(
        self, n: int, aux: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """``n`` draws ``LongTensor[n, D]``, one variable at a time in ``ordering``.

        Incremental: the first layer's pre-activation starts at ``W_a a + b`` and gains the weight
        column of each value once it is drawn, and only the K logits of the variable being drawn
        are computed. The draws equal :meth:`sample_reference` (D full passes) from the same
        ``generator``, up to float rounding of the logits. In training mode with dropout, the
        reference runs instead (dropout makes every pass different)."""
        dropout_on = self.training and any(isinstance(m, nn.Dropout) for m in self.net)
        if dropout_on:
            return self.sample_reference(n, aux, generator)
        self._check_aux(aux)
        linears = [m for m in self.net if isinstance(m, MaskedLinear)]
        weights = [m.weight * m.mask for m in linears]
        k, n_inputs = self.n_categories, self.n_vars * self.n_categories
        value_rows = weights[0][:, :n_inputs].t()  # row v·K + j: what x_v = j adds to layer 1
        pre = linears[0].bias.expand(n, -1).clone()
        aux_logits = None
        if self.aux_dim:
            pre += F.linear(aux, weights[0][:, n_inputs:])
            aux_logits = self.aux_to_out(aux)
        x = torch.zeros(n, self.n_vars, dtype=torch.long, device=pre.device)
        for v in self.ordering:
            h = F.relu(pre)
            for layer, weight in zip(linears[1:-1], weights[1:-1], strict=True):
                h = F.relu(F.linear(h, weight, layer.bias))
            rows = slice(v * k, (v + 1) * k)
            logits = F.linear(h, weights[-1][rows], linears[-1].bias[rows])
            if aux_logits is not None:
                logits = logits + aux_logits[:, rows]
            draw = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            x[:, v] = draw.squeeze(-1)
            pre += value_rows[v * k + x[:, v]]
        return x

    @torch.no_grad()
    def sample_reference(
        self, n: int, aux: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """The textbook sampler: one full :meth:`forward` per variable (D passes)."""
        device = self.net[0].weight.device
        x = torch.zeros(n, self.n_vars, dtype=torch.long, device=device)
        for v in self.ordering:
            probs = F.softmax(self.forward(x, aux)[:, v], dim=-1)
            x[:, v] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        return x


class MADE(DensityModel):
    """A MADE density model over ``LongTensor[B, D]`` in {0..K-1} (HW1 §2 uses D = 2, K = 200).

    ``nll(x) = -Σ_d log p(x_{o_d} | x_{o_<d})`` in nats; bits/dim divide by D. With dropout, the
    density is that of the network in eval mode (as in validation, test and sampling callbacks).

    Args:
        n_vars, n_categories, hidden_sizes, ordering, mask_seed, dropout: see :class:`MADENet`.
        lr: Adam learning rate.
    """

    def __init__(
        self,
        n_vars: int = 2,
        n_categories: int = 200,
        hidden_sizes: list[int] | None = None,
        ordering: list[int] | None = None,
        mask_seed: int | None = None,
        dropout: float = 0.0,
        lr: float = 1e-3,
    ) -> None:
        super().__init__(lr=lr)
        self.save_hyperparameters()
        self.net = MADENet(
            n_vars,
            n_categories,
            hidden_sizes if hidden_sizes is not None else [512, 512],
            ordering,
            mask_seed=mask_seed,
            dropout=dropout,
        )

    @property
    def n_dims(self) -> int:
        return self.net.n_vars

    @property
    def n_categories(self) -> int:
        return self.net.n_categories

    def nll(self, x: Tensor) -> Tensor:
        return -self.net.log_prob(x)

    def sample(self, n: int) -> Tensor:
        return self.net.sample(n)
