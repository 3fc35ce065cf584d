"""Every categorical model computes its loss in log space: extreme parameters give finite losses."""

from __future__ import annotations

import functools

import pytest
import torch

from ar_models import ARMLP, MADE, Histogram, PixelCNN

PixelCNNMADE = functools.partial(PixelCNN, channel_model="made")

SMALL_IMAGE = dict(image_shape=(3, 5, 4), n_filters=8, n_layers=1, first_kernel=3)


def blow_up(model: torch.nn.Module, scale: float) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * scale)
    return model.eval()


@pytest.mark.parametrize(
    "make, x",
    [
        (lambda: Histogram(n_categories=5), torch.arange(5)),
        (lambda: MADE(n_vars=2, n_categories=6, hidden_sizes=[8]), torch.randint(0, 6, (4, 2))),
        (lambda: ARMLP(n_categories=6, hidden_sizes=[8]), torch.randint(0, 6, (4, 2))),
        (lambda: PixelCNN(**SMALL_IMAGE), torch.randint(0, 4, (2, 3, 5, 4))),
        (
            lambda: PixelCNNMADE(**SMALL_IMAGE, made_hidden_sizes=(8,)),
            torch.randint(0, 4, (2, 3, 5, 4)),
        ),
    ],
    ids=["histogram", "made", "ar_mlp", "pixelcnn", "pixelcnn_made"],
)
def test_extreme_parameters_give_finite_losses(make, x):
    # 1e3 for every weight: far outside training; deeper nets overflow float32 activations (not
    # their losses) at larger scales, which the extreme-logit test below covers.
    model = blow_up(make(), 1e3)
    nll = model.nll(x)
    assert torch.isfinite(nll).all() and (nll >= 0).all()
    nll.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("cls", [PixelCNN, PixelCNNMADE])
def test_extreme_logits_give_finite_losses(cls):
    model = cls(**SMALL_IMAGE).eval()
    last = model.net.layers[-1]
    with torch.no_grad():
        signs = torch.tensor([(-1.0) ** i for i in range(last.bias.numel())])
        last.bias.copy_(signs * 1e30)  # logits of ±1e30 reach the softmax / the MADE
        last.weight.zero_()
    nll = model.nll(torch.randint(0, 4, (2, 3, 5, 4)))
    assert torch.isfinite(nll).all() and (nll >= 0).all()
