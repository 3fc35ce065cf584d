"""The Fréchet distance between two Gaussians fitted to feature vectors (the FID idea)."""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_fit(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``[F]`` and unbiased covariance ``[F, F]`` (float64) of ``features`` ``[N, F]``,
    N >= 2."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"need features [N, F] with N >= 2, got shape {tuple(features.shape)}")
    features = features.double()
    mean = features.mean(0)
    centred = features - mean
    return mean, centred.T @ centred / (features.shape[0] - 1)


def _sqrt_psd(matrix: Tensor) -> Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> float:
    """d² = ‖μ_a − μ_b‖² + Tr(Σ_a) + Tr(Σ_b) − 2 Tr((Σ_a^½ Σ_b Σ_a^½)^½), the squared 2-Wasserstein
    distance of N(μ_a, Σ_a) and N(μ_b, Σ_b) (Dowson & Landau 1982; FID, Heusel et al. 2017), in
    squared feature units. Computed in float64 by symmetric eigendecompositions."""
    mean_a, cov_a, mean_b, cov_b = (t.double() for t in (mean_a, cov_a, mean_b, cov_b))
    root_a = _sqrt_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    value = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return float(value.clamp(min=0))


def features_frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """:func:`frechet_distance` of the Gaussians fitted to two sets of feature vectors."""
    return frechet_distance(*gaussian_fit(features_a), *gaussian_fit(features_b))
