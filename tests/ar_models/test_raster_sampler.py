"""The raster sampler: cached (incremental) generation computes exactly what the full forward pass
computes, and the cached and naive samplers draw the same images."""

from __future__ import annotations

import pytest
import torch

from ar_models.pixelcnn import PixelCNN
from ar_models.sampling import IncrementalNet, step_through

SMALL = dict(image_shape=(3, 7, 6), n_filters=16, n_layers=2, first_kernel=5)


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return model.eval()


@pytest.mark.parametrize(
    "kwargs",
    [
        SMALL,
        {**SMALL, "dilations": (3, 1)},
        dict(image_shape=(3, 28, 28)),  # the default size
    ],
    ids=["small", "small-dilated", "default"],
)
def test_every_step_equals_the_full_forward_pass(kwargs):
    model = PixelCNN(**kwargs).eval()
    if kwargs["image_shape"] == (3, 28, 28):
        torch.manual_seed(0)  # the default initialisation, at the handout's size
    else:
        randomise(model)
    x = torch.randint(0, 4, (2, *model.image_shape))
    x_in = model.embed(x)
    with torch.no_grad():
        full = model.net(x_in)
    stepped = step_through(IncrementalNet(model.net.layers, len(x), *model.image_shape[1:]), x_in)
    assert (stepped - full).abs().max().item() < 1e-4


@pytest.mark.parametrize("channel_model", ["factorised", "made"])
@pytest.mark.parametrize("coding", [{}, {"palette_codes": True}], ids=["x", "pal"])
@pytest.mark.parametrize("dilations", [(1,), (2, 1)], ids=["plain", "dilated"])
def test_cached_and_naive_samplers_draw_the_same_images(channel_model, coding, dilations):
    model = PixelCNN(**SMALL, **coding, dilations=dilations, channel_model=channel_model)
    model = randomise(model).double()  # float64
    draws = []
    for cached in (True, False):
        generator = torch.Generator().manual_seed(7)
        draws.append(model.sample(5, generator=generator, cached=cached))
    assert draws[0].dtype == torch.long and draws[0].shape == (5, *model.image_shape)
    assert torch.equal(draws[0], draws[1])


def test_cached_sampler_follows_the_model():
    """Each sampled pixel has positive probability under the full model's conditionals."""
    model = randomise(PixelCNN(**SMALL, channel_model="made"))
    x = model.sample(4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        nll = model.nll(x)
    assert torch.isfinite(nll).all()


@pytest.mark.parametrize(
    "kernel, mask_type, dilation",
    [(1, "B", 1), (3, "B", 1), (5, "A", 1), (7, "A", 1), (7, "B", 1), (3, "B", 2), (5, "A", 3)],
)
def test_cropped_masked_conv_equals_the_masked_weight_form(kernel, mask_type, dilation):
    from ar_models.masked_conv import MaskedConv2d

    torch.manual_seed(kernel)
    conv = MaskedConv2d(5, 6, kernel, mask_type, dilation)
    x = torch.randn(3, 5, 11, 9)
    assert (conv(x) - conv.masked_weight_forward(x)).abs().max().item() < 1e-5
    x_last = x.contiguous(memory_format=torch.channels_last)
    assert (conv(x_last) - conv.masked_weight_forward(x)).abs().max().item() < 1e-5
