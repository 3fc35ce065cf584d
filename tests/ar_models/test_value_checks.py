"""Per-batch value checks happen only where nobody checked before: batches of this library's data
modules (checked once when loaded) skip them, data given directly or through a user's loader is
checked, and bad data in a data module still stops at its first batch with the model's message."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

import ar_models.histogram as histogram
from ar_models import Histogram
from ar_models.base import declared_value_range
from datamodules import WarmupDataModule
from datamodules.base import ArrayDataModule, Split, split_first_last


@pytest.fixture
def checks(monkeypatch) -> list[bool]:
    """The ``values`` flag of every check_categorical call the Histogram makes."""
    seen: list[bool] = []
    original = histogram.check_categorical

    def spy(*args, values: bool = True, **kwargs) -> None:
        seen.append(values)
        original(*args, values=values, **kwargs)

    monkeypatch.setattr(histogram, "check_categorical", spy)
    return seen


def trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_data_module_batches_are_not_checked_again(checks):
    data = WarmupDataModule(batch_size=1000)
    trainer(limit_train_batches=3, limit_val_batches=2).fit(Histogram(), datamodule=data)
    low, high = data.value_range  # the extremes of the data itself
    assert low == int(data.train.x.min()) and 0 <= low and high <= 99
    assert len(checks) == 5 and not any(checks)  # 3 train, 1 sanity-check and 1 validation


def test_direct_calls_are_checked_also_after_fit(checks):
    model = Histogram()
    trainer(limit_train_batches=2, limit_val_batches=1).fit(model, datamodule=WarmupDataModule())
    checks.clear()
    with pytest.raises(ValueError, match=r"Histogram expects .* got values in 0\.\.100"):
        model.nll(torch.tensor([0, 100]))
    assert checks == [True]


def test_batches_of_a_users_own_loader_are_checked(checks):
    x = torch.randint(0, 100, (256,))
    loader = DataLoader(x, batch_size=64)
    run = trainer()
    run.fit(Histogram(), train_dataloaders=loader, val_dataloaders=loader)
    assert checks and all(checks)
    checks.clear()
    run.test(run.lightning_module, dataloaders=loader)  # no data module's range carries over
    assert checks and all(checks)


class OutOfRange(ArrayDataModule):
    """Integer data in 0..150: the data module's own check passes, the model's range is 0..99."""

    def load(self) -> tuple[Split, Split]:
        return split_first_last(Split(torch.arange(1000) % 151))


def test_data_outside_the_models_range_stops_at_the_first_batch(checks):
    with pytest.raises(ValueError, match=r"Histogram expects .* values in 0\.\.99, got values in"):
        trainer(num_sanity_val_steps=0).fit(Histogram(), datamodule=OutOfRange(batch_size=1000))
    assert checks == [True]


def test_declared_value_range_of_one_or_many_loaders():
    a, b = DataLoader([0]), DataLoader([0])
    a.value_range, b.value_range = (0, 3), (1, 7)
    assert declared_value_range(a) == (0, 3)
    assert declared_value_range([a, b]) == (0, 7) == declared_value_range({"a": a, "b": b})
    assert declared_value_range([a, DataLoader([0])]) is None
    assert declared_value_range(None) is None
