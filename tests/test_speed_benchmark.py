"""The speed benchmark compares the same function computed two ways, and counts its work right."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from ar_models.pixelcnn import PixelCNN

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHAPE = (3, 6, 5)


def _pair(kernel_size: int):
    reference = _load("reference_pixelcnn")
    torch.manual_seed(0)
    ours = PixelCNN(image_shape=SHAPE, n_filters=8, n_layers=2, kernel_size=kernel_size)
    textbook = reference.TextbookPixelCNN(SHAPE, n_filters=8, n_layers=2, kernel_size=kernel_size)
    textbook.load_state_dict({k: v for k, v in ours.state_dict().items() if k.startswith("net.")})
    return ours, textbook


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_textbook_reference_computes_our_nll(kernel_size: int) -> None:
    ours, textbook = _pair(kernel_size)
    x = torch.randint(0, 4, (4, *SHAPE))
    torch.testing.assert_close(textbook.nll(x), ours.nll(x), rtol=1e-5, atol=1e-4)


def test_multiply_adds_per_pixel_counts_kernels_by_hand() -> None:
    speed = _load("pixelcnn_speed")
    ours, textbook = _pair(3)
    c_in, f, b = 3 * 4, 8, 4  # one-hot channels, filters, bottleneck
    full = c_in * f * 49 + 2 * (f * b + b * b * 9 + b * f) + f * f + f * c_in
    cropped = c_in * f * 28 + 2 * (f * b + b * b * 6 + b * f) + f * f + f * c_in
    exact = c_in * f * 24 + 2 * (f * b + b * b * 5 + b * f) + f * f + f * c_in
    assert speed.multiply_adds_per_pixel(textbook.net, "computed") == full
    assert speed.multiply_adds_per_pixel(ours.net, "computed") == cropped
    assert speed.multiply_adds_per_pixel(ours.net, "exact") == exact
    assert speed.multiply_adds_per_pixel(textbook.net, "exact") == exact
