"""HW3 §1 data: the handout's ``sample_data_1/2/3()``, 100,000 points in R² each.

Datasets 1 and 2 are exactly Gaussian: x = m + g · diag(s) · R with g ~ N(0, I) (row vectors) and
R the rotation by 45°, so x ~ N(m, Rᵀ diag(s²) R). Dataset 1 has m = (1, 2), s = (5, 1), i.e.
covariance [[13, 12], [12, 13]]; dataset 2 has m = (-1, 2), s = (1, 5), covariance
[[13, -12], [-12, 13]]. Their best possible NLL is therefore known (:func:`gaussian_entropy_bpd`,
:func:`true_nll_bpd`). Dataset 3 is three labelled clusters (two blobs and a half ring).

Batches are ``FloatTensor[B, 2]``, and ``(x, y)`` with ``y: LongTensor[B]`` ∈ {0, 1, 2} for
dataset 3. The first 80% of the points are train, the last 20% test; validation is carved from
train.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ar_models.errors import DataError, check
from datamodules.base import ArrayDataModule, Split, split_first_last

LN2 = math.log(2.0)
#: The handout's 45° rotation (applied on the right to row vectors).
ROTATION = np.array([[np.sqrt(2) / 2, np.sqrt(2) / 2], [-np.sqrt(2) / 2, np.sqrt(2) / 2]])
#: (mean, per-axis scale before the rotation) of the Gaussian datasets 1 and 2.
GAUSSIAN_LAWS = {1: ((1.0, 2.0), (5.0, 1.0)), 2: ((-1.0, 2.0), (1.0, 5.0))}
DATASETS = (1, 2, 3)


def sample_data_1(count: int = 100000, seed: int = 0) -> np.ndarray:
    """The handout's ``sample_data_1()``: ``count`` draws of N((1, 2), Rᵀ diag(25, 1) R)."""
    rand = np.random.RandomState(seed)
    return [[1.0, 2.0]] + (rand.randn(count, 2) * [[5.0, 1.0]]).dot(ROTATION)


def sample_data_2(count: int = 100000, seed: int = 0) -> np.ndarray:
    """The handout's ``sample_data_2()``: ``count`` draws of N((-1, 2), Rᵀ diag(1, 25) R)."""
    rand = np.random.RandomState(seed)
    return [[-1.0, 2.0]] + (rand.randn(count, 2) * [[1.0, 5.0]]).dot(ROTATION)


def sample_data_3(count: int = 100000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The handout's ``sample_data_3()``: ``count // 3`` points each (so 99,999 of the default
    100,000) of two blobs N((∓1.5, 2.5), 0.2² I) and of the lower half ellipse
    (2 cos t, −sin t), t = linspace(0, π), plus N(0, 0.2² I) noise; shuffled; labels 0, 1, 2."""
    rand = np.random.RandomState(seed)
    a = [[-1.5, 2.5]] + rand.randn(count // 3, 2) * 0.2
    b = [[1.5, 2.5]] + rand.randn(count // 3, 2) * 0.2
    c = np.c_[
        2 * np.cos(np.linspace(0, np.pi, count // 3)),
        -np.sin(np.linspace(0, np.pi, count // 3)),
    ]
    c += rand.randn(*c.shape) * 0.2
    data_x = np.concatenate([a, b, c], axis=0)
    data_y = np.array([0] * len(a) + [1] * len(b) + [2] * len(c))
    perm = rand.permutation(len(data_x))
    return data_x[perm], data_y[perm]


def check_dataset(dataset: int) -> None:
    if isinstance(dataset, bool) or dataset not in DATASETS:
        raise DataError(
            f"dataset must be one of {DATASETS} (the handout's sample_data_<k>), got {dataset!r}"
        )


def true_gaussian(dataset: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[2]`` and covariance ``[2, 2]`` of the exact law of dataset 1 or 2."""
    check_dataset(dataset)
    if dataset not in GAUSSIAN_LAWS:
        raise DataError(f"dataset {dataset} is not Gaussian; only datasets 1 and 2 are")
    mean, scale = GAUSSIAN_LAWS[dataset]
    cov = ROTATION.T @ np.diag(np.square(scale)) @ ROTATION
    return np.array(mean), cov


def gaussian_entropy_bpd(cov: np.ndarray) -> float:
    """Differential entropy of N(m, Σ) in bits/dim: H/D = [½ D log(2πe) + ½ log det Σ] / (D ln 2).

    The expected NLL of any model on data from N(m, Σ) is at least this; 3.208 for datasets 1, 2.
    """
    d = cov.shape[0]
    _, logdet = np.linalg.slogdet(cov)
    return float((0.5 * d * math.log(2 * math.pi * math.e) + 0.5 * logdet) / (d * LN2))


def _isotropic_mixture_log_prob(
    x: np.ndarray, centres: np.ndarray, sigma: float, chunk: int = 500
) -> np.ndarray:
    """log (1/M) Σ_m N(x; c_m, σ² I) for each row of ``x [N, 2]`` (nats), in chunks of rows."""
    out = np.empty(len(x))
    for start in range(0, len(x), chunk):
        block = x[start : start + chunk]
        sq = ((block[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        log_n = -sq / (2 * sigma**2) - math.log(2 * math.pi * sigma**2)
        peak = log_n.max(1)
        out[start : start + chunk] = peak + np.log(np.exp(log_n - peak[:, None]).mean(1))
    return out


def true_log_prob(x: np.ndarray, dataset: int, count: int = 100000) -> np.ndarray:
    """log p(x) (nats) of each row of ``x [N, 2]`` under the law that generates dataset k.

    Datasets 1, 2: the Gaussian of :func:`true_gaussian`. Dataset 3 (of ``count`` points): the
    equal-weight mixture of the two blobs and of N(c_i, 0.2² I) over the ``count // 3`` points c_i
    of the half ellipse (each point's index is uniform after the handout's permutation).
    """
    x = np.asarray(x, dtype=np.float64)
    if dataset == 3:
        t = np.linspace(0, np.pi, count // 3)
        ring = np.c_[2 * np.cos(t), -np.sin(t)]
        parts = [
            _isotropic_mixture_log_prob(x, np.array([[-1.5, 2.5]]), 0.2),
            _isotropic_mixture_log_prob(x, np.array([[1.5, 2.5]]), 0.2),
            _isotropic_mixture_log_prob(x, ring, 0.2),
        ]
        stacked = np.stack(parts)
        peak = stacked.max(0)
        return peak + np.log(np.exp(stacked - peak).mean(0))
    mean, cov = true_gaussian(dataset)
    diff = x - mean
    maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (2 * math.log(2 * math.pi) + logdet + maha)


def true_nll_bpd(x: np.ndarray, dataset: int, count: int = 100000) -> float:
    """Mean NLL of the points ``x [N, 2]`` under the exact law of dataset k, in bits/dim."""
    return float(-true_log_prob(x, dataset, count).mean() / (2 * LN2))


class Toy2DDataModule(ArrayDataModule):
    """HW3 §1: ``count`` points of the handout's ``sample_data_<dataset>()``, split 80/20.

    The first 80% train, the last 20% test, a seeded ``val_fraction`` of train held out for
    validation.

    Args:
        dataset: 1, 2 (Gaussian, unlabelled) or 3 (three clusters, labelled).
        count: number of points (the handout's 100,000).
        data_seed: seed of ``np.random.RandomState`` in ``sample_data_<k>`` (the handout's 0).
        kwargs: ``batch_size``, ``val_fraction``, ``seed``, ``num_workers`` of
            :class:`~datamodules.base.ArrayDataModule`.
    """

    def __init__(
        self,
        dataset: int = 1,
        count: int = 100000,
        data_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_dataset(dataset)
        check(DataError, count=count, integer=True, minimum=1)
        if dataset == 3 and count < 3:
            raise DataError(f"dataset 3 needs count >= 3 (three clusters), got {count}")
        self.dataset = dataset
        self.count = count
        self.data_seed = data_seed

    def load(self) -> tuple[Split, Split]:
        if self.dataset == 3:
            x, y = sample_data_3(self.count, self.data_seed)
            split = Split(torch.from_numpy(x).float(), torch.from_numpy(y).long())
        else:
            sampler = sample_data_1 if self.dataset == 1 else sample_data_2
            split = Split(torch.from_numpy(sampler(self.count, self.data_seed)).float())
        return split_first_last(split)
