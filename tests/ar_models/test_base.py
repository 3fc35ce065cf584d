"""The shared DensityModel steps: exact epoch means in bits/dim over uneven batches; the shared
configuration checks."""

import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ar_models import DensityModel, Histogram, NonFiniteLossError
from ar_models.errors import ModelConfigError, check


class FixedNLL(DensityModel):
    """A model whose per-example nll is a known function of x: nll(x) = x (nats), 3 dims."""

    def __init__(self) -> None:
        super().__init__(lr=1e-3)
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    @property
    def n_dims(self) -> int:
        return 3

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        return x.double() + 0 * self.dummy

    def sample(self, n: int) -> torch.Tensor:
        return torch.zeros(n, dtype=torch.float64)


def test_validation_bpd_is_the_exact_mean_over_examples():
    x = torch.arange(10, dtype=torch.float64) ** 2  # batch size 3 leaves a last batch of 1
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    result = trainer.validate(FixedNLL(), dataloaders=DataLoader(x, batch_size=3), verbose=False)
    assert result[0]["val/bpd"] == pytest.approx(x.mean().item() / (3 * math.log(2)), rel=1e-6)


def test_non_finite_loss_stops_with_the_step():
    model = Histogram()
    with torch.no_grad():
        model.logits[3] = float("nan")
    with pytest.raises(NonFiniteLossError, match="global step 0"):
        model.training_step(torch.tensor([3, 4]), 0)


def test_batches_with_labels_are_unpacked():
    model = Histogram()
    loss = model.training_step((torch.tensor([1, 2]), torch.tensor([0, 0])), 0)
    assert loss.item() == pytest.approx(math.log(100))


def test_config_checks_name_the_first_bad_value():
    check(integer=True, minimum=1, a=1, b=7)
    check(integer=True, minimum=0, a=0, b=3)
    check(minimum=0, a=0, b=2.5)
    for bad in (0, -1, True, 1.0):
        with pytest.raises(ModelConfigError, match="b must be a positive integer"):
            check(integer=True, minimum=1, a=1, b=bad)
    for bad in (-1, False, 0.0, "1"):
        with pytest.raises(ModelConfigError, match="b must be an integer >= 0"):
            check(integer=True, minimum=0, a=0, b=bad)
    for bad in (-0.5, math.nan, math.inf):
        with pytest.raises(ModelConfigError, match="b must be a finite number >= 0"):
            check(minimum=0, a=1.0, b=bad)
