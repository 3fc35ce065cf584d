import math
import re

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from scipy.stats import chisquare

from ar_models import Histogram, ModelConfigError
from datamodules import WarmupDataModule


def random_histogram(k: int = 100, seed: int = 0) -> Histogram:
    model = Histogram(n_categories=k)
    with torch.no_grad():
        model.logits.copy_(torch.randn(k, generator=torch.Generator().manual_seed(seed)) * 2)
    return model


def test_initialised_uniform():
    model = Histogram(n_categories=100)
    nll = model.nll(torch.arange(100))
    assert torch.allclose(nll, torch.full((100,), math.log(100)))


def test_probabilities_sum_to_one():
    model = random_histogram()
    probs = torch.exp(-model.nll(torch.arange(100)).double())
    assert abs(probs.sum().item() - 1.0) < 1e-6


def test_bits_per_dim_is_nll_over_ln2():
    model = random_histogram()
    x = torch.tensor([0, 5, 99])
    assert torch.allclose(model.to_bpd(model.nll(x)), model.nll(x) / math.log(2))


def test_samples_follow_the_model():
    model = random_histogram(k=20, seed=1)
    torch.manual_seed(0)
    n = 200_000
    counts = np.bincount(model.sample(n).numpy(), minlength=20)
    probs = torch.exp(-model.nll(torch.arange(20))).double().detach().numpy()
    expected = probs / probs.sum() * n
    assert chisquare(counts, expected).pvalue > 1e-3
    # The same check rejects samples from a different law (so it can fail).
    assert chisquare(counts, np.roll(expected, 1)).pvalue < 1e-6


def test_rejects_bad_arguments():
    with pytest.raises(ModelConfigError, match="n_categories"):
        Histogram(n_categories=1)
    with pytest.raises(ModelConfigError, match="lr"):
        Histogram(lr=-1.0)


@pytest.mark.parametrize(
    "x, got",
    [
        (torch.zeros(2, 2, dtype=torch.long), "got shape (2, 2)"),
        (torch.tensor([0, 100]), "got values in 0..100"),
        (torch.tensor([-1, 3]), "got values in -1..3"),
        (torch.tensor([0.5]), "got torch.float32"),
    ],
)
def test_rejects_bad_inputs_by_name(x, got):
    with pytest.raises(
        ValueError,
        match=r"Histogram expects an integer tensor \[B\] with values in "
        r"0\.\.99, " + re.escape(got),
    ):
        Histogram().nll(x)


def test_extreme_logits_give_finite_losses():
    model = Histogram(n_categories=3)
    with torch.no_grad():
        model.logits.copy_(torch.tensor([1e30, -1e30, 0.0]))
    nll = model.nll(torch.tensor([0, 1, 2]))
    assert torch.isfinite(nll).all() and nll[0] == 0


def test_fit_lowers_validation_bits_on_real_data(tmp_path):
    data = WarmupDataModule(batch_size=256, val_fraction=0.2)
    model = Histogram(lr=0.05)
    trainer = pl.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    before = trainer.validate(model, datamodule=data, verbose=False)[0]["val/bpd"]
    trainer.fit(model, datamodule=data)
    after = trainer.validate(model, datamodule=data, verbose=False)[0]["val/bpd"]
    assert before == pytest.approx(math.log2(100), abs=1e-5)
    assert after < before - 0.5
