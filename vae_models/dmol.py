"""The discretised mixture of logistics over 8-bit RGB pixels (PixelCNN++, Salimans et al. 2017).

Values. A pixel is x = (x_R, x_G, x_B) ∈ {0..255}³. Each value is mapped to the centre of its bin on
[−1, 1], v = 2x/255 − 1, and its bin is [v − 1/255, v + 1/255]: the 256 bins tile [−1, 1] and the
two edge bins are extended to ±∞ (x = 0 takes everything below −1 + 1/255, x = 255 everything
above 1 − 1/255), so every real number falls into exactly one bin.

The distribution of one pixel with M mixture components k (one indicator shared by the three
channels, as in the paper's section 2.2):

    P(x) = Σ_k π_k · P_k(x_R) · P_k(x_G | x_R) · P_k(x_B | x_R, x_G),

    P_k(x_c | x_<c) = F((v_c + 1/255 − μ_{k,c}) / s_{k,c}) − F((v_c − 1/255 − μ_{k,c}) / s_{k,c}),

with F(t) = σ(t) = 1/(1 + e^{−t}) the logistic CDF, F(−∞) = 0, F(+∞) = 1 at the edge bins, and the
means of G and B linear in the values already known for the same pixel (the channel dependencies
of the paper):

    μ_{k,R} = m_{k,R},   μ_{k,G} = m_{k,G} + α_k v_R,   μ_{k,B} = m_{k,B} + β_k v_R + γ_k v_G.

Each factor is a distribution over {0..255} (the bins tile ℝ, so the 256 CDF differences telescope
to F(∞) − F(−∞) = 1), hence P is one over {0..255}³.

Parameter layout. ``params`` is ``[B, 10·M, H, W]``: per pixel 10·M numbers, channel index

* ``[0, M)``: the M mixture logits (π = softmax);
* ``[M, 4M)``: the means m, channel c ∈ {R, G, B} and component k at ``M + c·M + k``;
* ``[4M, 7M)``: the log-scales log s, at ``4M + c·M + k``, clamped to
  [``LOG_SCALE_MIN``, ``LOG_SCALE_MAX``] = [−7, 7] (−7 as in PixelCNN++; the upper clamp keeps
  1/s from underflowing);
* ``[7M, 10M)``: the raw coefficients, (α, β, γ) = tanh(raw) at ``7M + j·M + k``, j = 0, 1, 2.

Numerics. All probabilities are computed as logs, with no subtraction of probabilities. With
a = (v + 1/255 − μ)/s and b = (v − 1/255 − μ)/s (so a − b = 2/(255 s) > 0), the exact identity

    σ(a) − σ(b) = σ(a) · σ(−b) · (1 − e^{−(a−b)})

gives log P = logσ(a) + logσ(−b) + log(−expm1(−(a − b))), each term finite and accurate for every
a > b: far in a tail (σ(a) − σ(b) underflows to 0 in floating point) it is the sum of two large
negative log-sigmoids, and for a tiny bin (s large) the last term is ≈ log(2/(255 s)). PixelCNN++
switches to the density at the bin centre when the difference underflows; the identity makes that
fallback unnecessary (the tests compare both with float64 references). Edge bins: log P(x = 0) =
logσ(a), log P(x = 255) = logσ(−b). Everything is in nats.

Sampling (:func:`sample`): draw the component k from π, then x_R from the logistic of component k,
then x_G with the mean shifted by α_k v_R, then x_B by β_k v_R + γ_k v_G, each by inverting the
logistic CDF at one uniform and taking the bin the value falls into. v_R, v_G are the bin centres
of the values drawn, as in :func:`log_prob`, so the draws follow P exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

N_CHANNELS = 3
N_LEVELS = 256
#: Half the width of a bin on the [−1, 1] scale.
HALF_BIN = 1.0 / (N_LEVELS - 1)
LOG_SCALE_MIN, LOG_SCALE_MAX = -7.0, 7.0
#: Numbers per component and pixel: a logit, 3 means, 3 log-scales, 3 coefficients.
PARAMS_PER_COMPONENT = 1 + 3 * N_CHANNELS


class DMOLParams(NamedTuple):
    """The parameters of every pixel, unpacked from ``params`` ``[B, 10·M, H, W]``."""

    logits: Tensor  #: [B, M, H, W] mixture logits
    means: Tensor  #: [B, 3, M, H, W] m_{k,c} (before the channel shifts)
    log_scales: Tensor  #: [B, 3, M, H, W] log s_{k,c}, clamped
    coeffs: Tensor  #: [B, 3, M, H, W] (α, β, γ)_k = tanh(raw)


def n_params(n_mixtures: int) -> int:
    """Channels of ``params`` for M = ``n_mixtures`` components: 10·M."""
    return PARAMS_PER_COMPONENT * n_mixtures


def scale_values(x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Bin centres v = 2x/255 − 1 ∈ [−1, 1] of 8-bit values ``x`` (any shape), as ``dtype``."""
    return x.to(dtype) * (2.0 / (N_LEVELS - 1)) - 1.0


def unpack(params: Tensor) -> DMOLParams:
    """Split ``params`` ``[B, 10·M, H, W]`` (layout in the module docstring)."""
    if params.dim() != 4 or params.shape[1] % PARAMS_PER_COMPONENT:
        raise ValueError(
            f"DMOL params must be [B, 10·M, H, W] (10 numbers per mixture component), got shape "
            f"{tuple(params.shape)}"
        )
    b, channels, h, w = params.shape
    m = channels // PARAMS_PER_COMPONENT
    logits = params[:, :m]
    rest = params[:, m:].reshape(b, 3, N_CHANNELS, m, h, w)
    log_scales = rest[:, 1].clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
    return DMOLParams(logits, rest[:, 0], log_scales, torch.tanh(rest[:, 2]))


def channel_means(means: Tensor, coeffs: Tensor, v: Tensor) -> Tensor:
    """μ_{k,c} of every component and channel, ``[B, 3, M, H, W]``, given the bin centres ``v``
    ``[B, 3, H, W]`` of the pixel's values (only v_R and v_G are read):
    μ_R = m_R, μ_G = m_G + α v_R, μ_B = m_B + β v_R + γ v_G."""
    v_r, v_g = v[:, 0:1], v[:, 1:2]  # [B, 1, H, W] broadcast over the M components
    mu_r = means[:, 0]
    mu_g = means[:, 1] + coeffs[:, 0] * v_r
    mu_b = means[:, 2] + coeffs[:, 1] * v_r + coeffs[:, 2] * v_g
    return torch.stack([mu_r, mu_g, mu_b], dim=1)


def logistic_bin_log_prob(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log P(x) of the discretised logistic with ``mean`` and ``log_scale`` on the [−1, 1] scale,
    for 8-bit values ``x`` (broadcast together; nats). Edge bins: x = 0 takes (−∞, −1 + 1/255),
    x = 255 takes [1 − 1/255, ∞). Stable for every finite input (module docstring)."""
    inv_scale = torch.exp(-log_scale)
    centred = scale_values(x, mean.dtype) - mean
    upper = (centred + HALF_BIN) * inv_scale  # a
    lower = (centred - HALF_BIN) * inv_scale  # b
    log_cdf_upper = F.logsigmoid(upper)  # log F(a)
    log_sf_lower = F.logsigmoid(-lower)  # log (1 − F(b))
    # a − b = 2/(255 s) exactly; written this way it cannot lose precision to cancellation
    log_width = torch.log(-torch.expm1(-(2.0 * HALF_BIN) * inv_scale))
    interior = log_cdf_upper + log_sf_lower + log_width
    return torch.where(
        x == 0, log_cdf_upper, torch.where(x == N_LEVELS - 1, log_sf_lower, interior)
    )


def _check_values(x: Tensor, params: Tensor, values: bool = True) -> None:
    if x.dtype.is_floating_point or x.dtype.is_complex:
        raise ValueError(f"DMOL values must be an integer tensor in 0..255, got {x.dtype}")
    if x.dim() != 4 or x.shape[1] != N_CHANNELS:
        raise ValueError(f"DMOL values must be [B, 3, H, W], got shape {tuple(x.shape)}")
    if x.shape[0] != params.shape[0] or x.shape[2:] != params.shape[2:]:
        raise ValueError(
            f"DMOL values {tuple(x.shape)} and params {tuple(params.shape)} differ in batch or "
            "image size"
        )
    if values and x.numel() and (int(x.min()) < 0 or int(x.max()) > N_LEVELS - 1):
        raise ValueError(f"DMOL values must be in 0..255, got {int(x.min())}..{int(x.max())}")


def channel_log_probs(x: Tensor, params: Tensor, check_values: bool = True) -> Tensor:
    """log P_k(x_c | x_<c) for every component k and channel c: ``[B, 3, M, H, W]`` (nats).

    ``x`` is ``LongTensor[B, 3, H, W]`` in {0..255} (``check_values=False`` skips checking the
    values, a device-to-host synchronisation, for data known to be in range), ``params``
    ``[B, 10·M, H, W]``."""
    p = unpack(params)
    _check_values(x, params, check_values)
    mu = channel_means(p.means, p.coeffs, scale_values(x, params.dtype))
    return logistic_bin_log_prob(x[:, :, None], mu, p.log_scales)


def log_prob(x: Tensor, params: Tensor, check_values: bool = True) -> Tensor:
    """log P(x) of each pixel, ``[B, H, W]`` (nats):
    logsumexp_k [log π_k + Σ_c log P_k(x_c | x_<c)] (``check_values``: see
    :func:`channel_log_probs`)."""
    p = unpack(params)
    per_component = channel_log_probs(x, params, check_values).sum(dim=1)  # [B, M, H, W]
    return torch.logsumexp(F.log_softmax(p.logits, dim=1) + per_component, dim=1)


def _bin_of(y: Tensor) -> Tensor:
    """The 8-bit value whose bin holds ``y`` (a real on the [−1, 1] scale, ±∞ allowed):
    floor((y + 1)·255/2 + ½) clamped to 0..255, ``LongTensor``."""
    return torch.floor((y + 1.0) * ((N_LEVELS - 1) / 2.0) + 0.5).clamp(0, N_LEVELS - 1).long()


@torch.no_grad()
def sample(params: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw x ~ P for every pixel: ``LongTensor[B, 3, H, W]`` in {0..255}.

    Uses B·H·W uniforms for the components, then B·3·H·W for the channels (one per channel, in
    that order), from ``generator`` (on ``params``' device) or the global generator: the component
    k is the first with cumulative probability above its uniform u; a channel value is the bin
    of μ + s (log u − log(1 − u)) (the logistic quantile), R first, then G with μ_G shifted by
    α_k v_R, then B with β_k v_R + γ_k v_G.
    """
    p = unpack(params)
    b, m, h, w = p.logits.shape
    options = dict(generator=generator, device=params.device, dtype=params.dtype)
    u_component = torch.rand(b, 1, h, w, **options)
    u_channels = torch.rand(b, N_CHANNELS, h, w, **options)
    cdf = torch.softmax(p.logits, dim=1).cumsum(dim=1)
    k = (cdf < u_component).sum(dim=1, keepdim=True).clamp(max=m - 1)  # [B, 1, H, W]
    index = k[:, None].expand(b, N_CHANNELS, 1, h, w)

    def pick(t: Tensor) -> Tensor:  # [B, 3, M, H, W] -> [B, 3, H, W] at component k
        return t.gather(2, index)[:, :, 0]

    m_k, log_s_k, coeff_k = pick(p.means), pick(p.log_scales), pick(p.coeffs)
    logistic = torch.log(u_channels) - torch.log1p(-u_channels)  # −∞ at u = 0: the bin x = 0
    scale = torch.exp(log_s_k)
    x_r = _bin_of(m_k[:, 0] + scale[:, 0] * logistic[:, 0])
    v_r = scale_values(x_r, params.dtype)
    x_g = _bin_of(m_k[:, 1] + coeff_k[:, 0] * v_r + scale[:, 1] * logistic[:, 1])
    v_g = scale_values(x_g, params.dtype)
    mu_b = m_k[:, 2] + coeff_k[:, 1] * v_r + coeff_k[:, 2] * v_g
    x_b = _bin_of(mu_b + scale[:, 2] * logistic[:, 2])
    return torch.stack([x_r, x_g, x_b], dim=1)
