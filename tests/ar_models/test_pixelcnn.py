"""PixelCNN and PixelCNN-MADE: masks, the autoregressive property (gradients and perturbations at
random initialisation), exact normalisation on tiny images, the cropped network pass, sampling."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from ar_models.errors import ModelConfigError
from ar_models.masked_conv import MaskedConv2d, raster_mask
from ar_models.pixelcnn import PixelCNN
from ar_models.sampling import CropStepper

PixelCNNMADE = functools.partial(PixelCNN, channel_model="made")
SMALL = dict(n_filters=16, n_layers=2)
SMALL_MADE = dict(SMALL, feature_dim=8, made_hidden_sizes=(16, 16))
MODELS = [
    (PixelCNN, SMALL),
    (PixelCNNMADE, SMALL_MADE),
    (PixelCNNMADE, dict(SMALL_MADE, dilations=(2, 1))),
    (PixelCNN, dict(SMALL, palette_codes=True)),
    (PixelCNNMADE, dict(SMALL_MADE, palette_codes=True)),
]
IDS = [
    "PixelCNN",
    "PixelCNNMADE",
    "dilated",
    "PixelCNN-palette",
    "PixelCNNMADE-palette",
]


def make(cls: type, shape: tuple[int, int, int], seed: int = 0, **kw: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return cls(image_shape=shape, **kw).double().eval()


# ---------------------------------------------------------------------- masks
def test_raster_masks() -> None:
    a, b = raster_mask(3, "A"), raster_mask(3, "B")
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert raster_mask(1, "B").tolist() == [[1]]
    assert raster_mask(7, "A").sum() == 24 and raster_mask(7, "B").sum() == 25


@pytest.mark.parametrize("args", [(4, "A"), (1, "A"), (3, "C"), (0, "B")])
def test_bad_masks(args: tuple[int, str]) -> None:
    with pytest.raises(ModelConfigError):
        raster_mask(*args)


def test_masked_conv_state_dict_is_plain_weight_bias_mask() -> None:
    conv = MaskedConv2d(2, 5, 3, "B")
    state = conv.state_dict()
    assert set(state) == {"weight", "bias", "mask"}
    assert state["mask"].shape == state["weight"].shape == (5, 2, 3, 3)
    # masked-out weights never matter
    x = torch.randn(1, 2, 6, 6)
    before = conv(x)
    with torch.no_grad():
        conv.weight.add_((1 - conv.mask) * 100.0)
    torch.testing.assert_close(conv(x), before)


# ---------------------------------------------------------------------- autoregressive property
def spatial_dependence(model: torch.nn.Module, pixels: list[tuple[int, int]]) -> torch.Tensor:
    """``[len(pixels), C, H, W]``: for each target pixel i, |∂ (random projection of the logits of
    every channel at i) / ∂ input|, the input being the float image the spatial network reads. One
    backward pass: batch element k carries target pixel k (examples do not interact)."""
    c, h, w = model.image_shape
    x = torch.randint(0, model.n_categories, (len(pixels), c, h, w))
    x_in = model.embed(x).requires_grad_(True)
    logits = model.conditional_logits(x, x_in)  # [N, C, H, W, K]
    rows, cols = zip(*pixels, strict=True)
    picked = logits[torch.arange(len(pixels)), :, torch.tensor(rows), torch.tensor(cols)]
    (picked * torch.randn_like(picked)).sum().backward()
    return x_in.grad.abs()


def check_spatial_ar(model: torch.nn.Module, pixels: list[tuple[int, int]]) -> None:
    """Logits at pixel i have zero gradient w.r.t. every input pixel at or after i (raster order),
    and a non-zero one w.r.t. some pixel before i (when there is one)."""
    _, h, w = model.image_shape
    grad = spatial_dependence(model, pixels).amax(dim=1).reshape(len(pixels), h * w)
    for k, (r, c) in enumerate(pixels):
        i = r * w + c
        assert grad[k, i:].max() == 0, f"logits at pixel {(r, c)} depend on pixels >= it"
        if i > 0:
            assert grad[k, :i].max() > 0, f"logits at pixel {(r, c)} depend on nothing before it"


def check_future_perturbation(model: torch.nn.Module, pixels: list[tuple[int, int]]) -> None:
    """Exact (discrete) check: redrawing every value at or after pixel i leaves the logits of all
    channels at i unchanged, except through the within-pixel MADE (checked separately)."""
    c, h, w = model.image_shape
    x = torch.randint(0, model.n_categories, (1, c, h, w))
    base = model.conditional_logits(x)
    for r, col in pixels:
        i = r * w + col
        y = x.clone().view(1, c, h * w)
        y[:, :, i + 1 :] = torch.randint(0, model.n_categories, y[:, :, i + 1 :].shape)
        if model.hparams.channel_model == "factorised":  # ignores pixel i itself too
            y[:, :, i] = torch.randint(0, model.n_categories, (1, c))
        out = model.conditional_logits(y.view(1, c, h, w))
        torch.testing.assert_close(out[0, :, r, col], base[0, :, r, col], rtol=0, atol=0)


def check_within_pixel(model: PixelCNN, pixels: list[tuple[int, int]]) -> None:
    """PixelCNN-MADE: changing channel c' of pixel i leaves the logits of channels <= c' at i
    unchanged, and changes those of some channel > c' (the MADE is not vacuous). With palette codes
    the channels are those of the codes (a colour's code is a function of all its channels)."""
    c, h, w = model.image_shape
    k = model.n_categories

    def logits(t: torch.Tensor) -> torch.Tensor:
        if model.palette_codes:
            return model.channel_head.logits(t, model.features(model.one_hot(t)))
        return model.conditional_logits(t)

    x = torch.randint(0, k, (1, c, h, w))
    base = logits(x)
    for (r, col), changed in itertools.product(pixels, range(c)):
        y = x.clone()
        y[0, changed, r, col] = (y[0, changed, r, col] + 1) % k
        out = logits(y)
        torch.testing.assert_close(
            out[0, : changed + 1, r, col], base[0, : changed + 1, r, col], rtol=0, atol=0
        )
        if changed < c - 1:
            assert (out[0, changed + 1 :, r, col] != base[0, changed + 1 :, r, col]).any()


@pytest.mark.parametrize(("cls", "kw"), MODELS, ids=IDS)
def test_autoregressive_small_all_pixels(cls: type, kw: dict) -> None:
    model = make(cls, (3, 9, 9), **kw)
    pixels = [(r, c) for r in range(9) for c in range(9)]
    check_spatial_ar(model, pixels)
    check_future_perturbation(model, pixels[::7])
    if cls is PixelCNNMADE:
        check_within_pixel(model, pixels[::5])


@pytest.mark.parametrize("cls", [PixelCNN, PixelCNNMADE])
def test_autoregressive_default_configuration(cls: type) -> None:
    """The handout's configuration (128 filters, 12 blocks) on 28×28 images, for a selection of
    target pixels: corners, edges, the centre and the pixels next to it."""
    model = cls()  # defaults: (3, 28, 28), K = 4, 128 filters, 12 blocks
    assert model.n_dims == 3 * 28 * 28 and model.receptive_radius == 15
    pixels = [(0, 0), (0, 1), (0, 27), (1, 0), (13, 15), (14, 13), (14, 14), (27, 0), (27, 27)]
    with torch.no_grad():
        check_future_perturbation(model, [(0, 0), (14, 14), (27, 26)])
    check_spatial_ar(model, pixels)
    if cls is PixelCNNMADE:
        with torch.no_grad():
            check_within_pixel(model, [(14, 14)])


# ---------------------------------------------------------------------- normalisation
def all_images(shape: tuple[int, int, int], k: int) -> torch.Tensor:
    n = int(np.prod(shape))
    states = torch.tensor(list(itertools.product(range(k), repeat=n)))
    return states.view(-1, *shape)


@pytest.mark.parametrize(("cls", "kw"), MODELS, ids=IDS)
@pytest.mark.parametrize(
    "shape", [(1, 2, 2), (2, 2, 2), (3, 1, 2)], ids=lambda s: "x".join(map(str, s))
)
def test_probabilities_of_all_states_sum_to_one(cls: type, kw: dict, shape: tuple) -> None:
    """Σ_x p(x) = 1 over all 4^(C·H·W) images: 256 (1×2×2), 65,536 (2×2×2), 4,096 (3×1×2; all
    3-channel 2×2 images would be 16.7M, see the chain-rule test below). Float64."""
    model = make(cls, shape, **kw)
    with torch.no_grad():
        log_p = torch.cat([-model.nll(x) for x in all_images(shape, 4).split(8192)])
    assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-10)
    assert model.n_dims == int(np.prod(shape))


@pytest.mark.parametrize(("cls", "kw"), MODELS, ids=IDS)
def test_three_channel_2x2_chain_rule(cls: type, kw: dict) -> None:
    """3-channel 2×2 images: for every prefix of the first pixels fixed at random, each conditional
    p(x_{i,c} | ...) is a distribution, and log p(x) equals the sum of the conditionals' log
    probabilities read from ``conditional_logits`` (nll and the conditionals agree)."""
    model = make(cls, (3, 2, 2), **kw)
    x = torch.randint(0, 4, (64, 3, 2, 2))
    target = model.to_codes(x) if model.palette_codes else x  # palette: logits of the codes
    with torch.no_grad():
        log_cond = torch.log_softmax(model.conditional_logits(x), dim=-1)
        picked = log_cond.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(-model.nll(x), picked.sum(dim=(1, 2, 3)))
    # summing p over the last pixel's 64 values leaves p(first three pixels), read from the
    # conditionals of those pixels
    prefix = x[:1].repeat(64, 1, 1, 1)
    prefix[:, :, 1, 1] = all_images((3, 1, 1), 4).view(64, 3)
    with torch.no_grad():
        log_p = -model.nll(prefix)
        log_prefix = sum(
            picked[0, ch, r, col] for ch in range(3) for r, col in [(0, 0), (0, 1), (1, 0)]
        )
    assert torch.logsumexp(log_p, 0).item() == pytest.approx(log_prefix.item(), abs=1e-10)


# ---------------------------------------------------------------------- cropped pass and sampling
@pytest.mark.parametrize(("cls", "kw"), MODELS, ids=IDS)
def test_cropped_pass_is_exact(cls: type, kw: dict) -> None:
    """The sampler's pass on the crop around (r, c) equals the full network's output at (r, c)."""
    model = make(cls, (3, 12, 12), **kw)
    x_in = model.embed(torch.randint(0, 4, (2, 3, 12, 12)))
    stepper = CropStepper(model.net, x_in, model.receptive_radius)
    with torch.no_grad():
        full = model.net(x_in)
        for r, c in itertools.product(range(12), range(12)):
            torch.testing.assert_close(stepper.step(r, c), full[:, :, r, c])


@pytest.mark.parametrize(("cls", "kw"), MODELS, ids=IDS)
def test_sample_shape_range_and_seed(cls: type, kw: dict) -> None:
    model = make(cls, (3, 5, 4), **kw)
    draw = [model.sample(6, generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    assert draw[0].dtype == torch.long and draw[0].shape == (6, 3, 5, 4)
    assert draw[0].min() >= 0 and draw[0].max() <= 3
    assert torch.equal(draw[0], draw[1])


@pytest.mark.parametrize(("cls", "kw"), MODELS, ids=IDS)
def test_sampler_follows_the_model(cls: type, kw: dict) -> None:
    """Frequencies of 20,000 samples of 2-channel 1×2 images (256 states) match p(x), chi-square."""
    model = make(cls, (2, 1, 2), seed=3, **kw)
    states = all_images((2, 1, 2), 4)
    with torch.no_grad():
        probs = torch.exp(-model.nll(states)).numpy()
        samples = model.sample(20000, generator=torch.Generator().manual_seed(0))
    index = (samples.view(-1, 4) * (4 ** torch.arange(3, -1, -1))).sum(1).numpy()
    counts = np.bincount(index, minlength=256)
    assert stats.chisquare(counts, probs / probs.sum() * counts.sum()).pvalue > 1e-3


def test_dilated_receptive_field_is_exactly_the_dilated_taps() -> None:
    """Two blocks of 3×3 convs dilated 2 then 1 after a 3×3 type-A conv: the logits at a pixel read
    the offsets of the Minkowski sum of the three masks' taps, scaled by their dilations."""
    model = make(
        PixelCNN,
        (1, 11, 11),
        first_kernel=3,
        n_filters=8,
        n_layers=2,
        dilations=(2, 1),
        n_categories=2,
    )
    assert model.receptive_radius == 1 + 2 + 1
    taps = [(0, 0)]
    for d, kind in [(1, "A"), (2, "B"), (1, "B")]:
        offsets = [(d * (i - 1), d * (j - 1)) for i, j in raster_mask(3, kind).nonzero().tolist()]
        taps = sorted({(r + a, c + b) for r, c in taps for a, b in offsets})
    grad = spatial_dependence(model, [(6, 5)]).amax(dim=1)[0]
    read = {(r - 6, c - 5) for r, c in (grad > 0).nonzero().tolist()}
    assert read == set(taps)


def test_nll_rejects_wrong_image_shape() -> None:
    model = PixelCNN(image_shape=(3, 8, 8), **SMALL)
    with pytest.raises(ModelConfigError, match="image_shape"):
        model.nll(torch.zeros(2, 3, 28, 28, dtype=torch.long))


def test_hyperparameters_roundtrip() -> None:
    model = PixelCNNMADE(image_shape=(3, 8, 8), **SMALL_MADE)
    copy = PixelCNN(**{k: v for k, v in model.hparams.items()})
    copy.load_state_dict(model.state_dict())
    x = torch.randint(0, 4, (2, 3, 8, 8))
    torch.testing.assert_close(copy.nll(x), model.nll(x))
