"""HW1 §1: the histogram model, a categorical distribution over ``n_categories`` values."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ar_models.base import DensityModel, check_categorical
from ar_models.errors import ModelConfigError


class Histogram(DensityModel):
    """p(x) = softmax(θ)_x over ``x ∈ {0..K-1}``, θ ∈ R^K initialised to zero (the uniform law).

    Batches are ``LongTensor[B]`` of category indices. ``nll`` is ``-log softmax(θ)_x`` in nats.

    Args:
        n_categories: K, the number of categories.
        lr: Adam learning rate.
    """

    def __init__(self, n_categories: int = 100, lr: float = 1e-1) -> None:
        super().__init__(lr=lr)
        if n_categories < 2:
            raise ModelConfigError(f"n_categories must be >= 2, got {n_categories}")
        self.save_hyperparameters()
        self.n_categories = n_categories
        self.logits = nn.Parameter(torch.zeros(n_categories))

    @property
    def n_dims(self) -> int:
        return 1

    def log_probs(self) -> Tensor:
        """log p(k) for every category k, shape ``[K]``, in nats."""
        return F.log_softmax(self.logits, dim=0)

    def nll(self, x: Tensor) -> Tensor:
        k = self.n_categories
        check_categorical(x, k, (), "Histogram", values=not self.batches_within(0, k - 1))
        return -self.log_probs()[x]

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return torch.multinomial(self.log_probs().exp(), n, replacement=True)
