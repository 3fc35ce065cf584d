"""The Fréchet distance against closed forms."""

from __future__ import annotations

import pytest
import torch

from metrics.frechet import features_frechet_distance, frechet_distance, gaussian_fit


def test_diagonal_gaussians_match_the_closed_form():
    # W2² of diagonal Gaussians: Σ (μa − μb)² + Σ (σa − σb)²
    mean_a, mean_b = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.5])
    std_a, std_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 0.5, 0.5])
    expected = ((mean_a - mean_b) ** 2).sum() + ((std_a - std_b) ** 2).sum()
    value = frechet_distance(mean_a, torch.diag(std_a**2), mean_b, torch.diag(std_b**2))
    assert value == pytest.approx(float(expected), rel=1e-9)


def test_rotation_invariant_zero_for_one_gaussian_and_a_shift_costs_its_square():
    torch.manual_seed(0)
    a = torch.randn(400, 5, dtype=torch.float64) @ torch.randn(5, 5, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    mean_a, cov_a = gaussian_fit(a)
    assert frechet_distance(mean_a, cov_a, mean_a, cov_a) == pytest.approx(0.0, abs=1e-8)
    rotated = frechet_distance(mean_a @ q.T, q @ cov_a @ q.T, *gaussian_fit(a @ q.T))
    assert rotated == pytest.approx(0.0, abs=1e-6)
    # same covariance, means 1 apart in each of 5 dimensions: d² = 5
    assert features_frechet_distance(a, a + 1.0) == pytest.approx(5.0, rel=1e-6)


def test_needs_two_vectors():
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_fit(torch.zeros(1, 3))
