"""HW1 §1 data: the handout's ``sample_data()``, 10,000 draws from a binned mixture of Gaussians.

Batches are ``LongTensor[B]``: the category index ``x - 1`` of the handout's ``x ∈ {1..100}``.
"""

from __future__ import annotations

from math import sqrt
from typing import Any

import numpy as np
import torch
from scipy.special import erf

from datamodules.base import ArrayDataModule, Split, split_first_last

N_CATEGORIES = 100
#: The generating law: 0.5 N(0.3, 0.1²) + 0.5 N(0.8, 0.05²), clipped to [0, 1], then binned.
MIXTURE = ((0.5, 0.3, 0.1), (0.5, 0.8, 0.05))


def sample_data(count: int = 10000, seed: int = 0) -> np.ndarray:
    """The handout's ``sample_data()``: values in {1..100} (``np.digitize`` of clipped samples)."""
    rand = np.random.RandomState(seed)
    a = 0.3 + 0.1 * rand.randn(count)
    b = 0.8 + 0.05 * rand.randn(count)
    mask = rand.rand(count) < 0.5
    samples = np.clip(a * mask + b * (1 - mask), 0.0, 1.0)
    return np.digitize(samples, np.linspace(0.0, 1.0, N_CATEGORIES))


class WarmupDataModule(ArrayDataModule):
    """HW1 §1: ``count`` samples of ``sample_data``; first 80% train, last 20% test.

    Args:
        count: number of samples drawn (the handout's 10,000).
        data_seed: seed of ``np.random.RandomState`` in ``sample_data`` (the handout's 0).
        kwargs: ``batch_size``, ``val_fraction``, ``seed``, ``num_workers`` of
            :class:`~datamodules.base.ArrayDataModule`.
    """

    n_categories = N_CATEGORIES

    def __init__(
        self,
        count: int = 10000,
        data_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.count = count
        self.data_seed = data_seed

    def load(self) -> tuple[Split, Split]:
        x = torch.from_numpy(sample_data(self.count, self.data_seed) - 1).long()
        return split_first_last(Split(x))


def true_probabilities() -> np.ndarray:
    """Exact p(x - 1) for x ∈ {1..100} under the generating law of ``sample_data``.

    ``np.digitize`` with edges e_j = j/99 (j = 0..99) puts a clipped sample s into bin i with
    e_{i-1} ≤ s < e_i, so with F the mixture CDF: P(1) = F(e_1) (all mass below 0 is clipped to 0),
    P(i) = F(e_i) - F(e_{i-1}) for i = 2..99, and P(100) = 1 - F(1) (mass clipped to exactly 1).
    """
    edges = np.linspace(0.0, 1.0, N_CATEGORIES)

    def cdf(s: np.ndarray) -> np.ndarray:
        return sum(w * 0.5 * (1 + erf((s - mu) / (sd * sqrt(2)))) for w, mu, sd in MIXTURE)

    upper = np.append(cdf(edges[1:]), 1.0)
    lower = np.concatenate([[0.0], cdf(edges[1:])])
    return upper - lower
