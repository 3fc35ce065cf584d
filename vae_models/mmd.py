"""The maximum mean discrepancy between two samples, for matching q(z) to the prior (InfoVAE).

With a kernel k, the squared MMD between distributions P and Q is

    MMD²(P, Q) = E k(x, x') + E k(y, y') − 2 E k(x, y),   x, x' ~ P,  y, y' ~ Q,

zero iff P = Q for a characteristic kernel. :func:`mmd_squared` is its unbiased estimate from
samples ``x`` [n, d] and ``y`` [m, d] (the diagonal terms k(x_i, x_i) left out), so it can be
slightly negative. The kernel is the inverse multiquadratic of Tolstikhin et al. (2018, WAE),
k(x, y) = C / (C + ‖x − y‖²), summed over the scales C = s · 2 d σ² for
s in :data:`IMQ_SCALES` (σ² = 1: the reference N(0, I)); each term lies in (0, 1].

InfoVAE (Zhao et al. 2019) adds γ · MMD²(q(z), p(z)) to the training objective, q(z) the
aggregate posterior (here: one draw z ~ q(z|x) per example of a batch), which pulls q(z) towards
the prior that samples are drawn from.
"""

from __future__ import annotations

from torch import Tensor

#: multiples s of 2 d σ² at which the inverse-multiquadratic kernel is summed (WAE's choice).
IMQ_SCALES: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def imq_kernel_sum(a: Tensor, b: Tensor, variance: float = 1.0) -> Tensor:
    """Σ_s C_s / (C_s + ‖a_i − b_j‖²) for ``a`` [n, d], ``b`` [m, d]: a kernel matrix [n, m]."""
    d = a.shape[1]
    dist2 = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)
    total = dist2.new_zeros(dist2.shape)
    for scale in IMQ_SCALES:
        c = scale * 2.0 * d * variance
        total = total + c / (c + dist2)
    return total


def _off_diagonal_mean(k: Tensor) -> Tensor:
    n = k.shape[0]
    return (k.sum() - k.diagonal().sum()) / (n * (n - 1))


def mmd_squared(x: Tensor, y: Tensor, variance: float = 1.0) -> Tensor:
    """The unbiased estimate of MMD²(P, Q) (module docstring) from ``x`` [n, d] ~ P and
    ``y`` [m, d] ~ Q, n, m >= 2, a scalar; ``variance`` σ² sets the kernel's scales."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"mmd_squared needs [n, d] and [m, d], got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(
            f"mmd_squared needs at least 2 points per sample, got {x.shape[0]}, {y.shape[0]}"
        )
    return (
        _off_diagonal_mean(imq_kernel_sum(x, x, variance))
        + _off_diagonal_mean(imq_kernel_sum(y, y, variance))
        - 2.0 * imq_kernel_sum(x, y, variance).mean()
    )
