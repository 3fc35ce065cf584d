import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from datamodules import DataError, WarmupDataModule
from datamodules.warmup import sample_data, true_probabilities


def test_split_sizes_and_contents_are_exact():
    data = WarmupDataModule(val_fraction=0.1)
    data.setup()
    assert (len(data.train), len(data.val), len(data.test)) == (7200, 800, 2000)
    x = torch.from_numpy(sample_data() - 1)
    assert torch.equal(data.test.x, x[8000:])  # the last 20%, in order
    merged = torch.cat([data.train.x, data.val.x]).sort().values
    assert torch.equal(merged, x[:8000].sort().values)  # train ∪ val = the first 80%
    assert data.train.x.min() >= 0 and data.train.x.max() <= 99


def test_validation_split_is_seeded():
    def val(seed):
        data = WarmupDataModule(seed=seed)
        data.setup()
        return data.val.x

    assert torch.equal(val(0), val(0))
    assert not torch.equal(val(0), val(1))


def test_batches_are_category_indices():
    data = WarmupDataModule(batch_size=64)
    data.setup()
    batch = next(iter(data.train_dataloader()))
    assert batch.dtype == torch.long and batch.shape == (64,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": -1}, "batch_size must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"val_fraction": 0.0}, r"val_fraction must be in the open interval \(0, 1\)"),
        ({"val_fraction": 1.0}, r"val_fraction must be in the open interval \(0, 1\)"),
        ({"val_fraction": 1.5}, r"val_fraction must be in the open interval \(0, 1\)"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(DataError, match=message):
        WarmupDataModule(**kwargs)


def test_true_probabilities_are_the_law_of_sample_data():
    p = true_probabilities()
    assert p.shape == (100,) and (p > 0).all()
    assert abs(p.sum() - 1.0) < 1e-12
    counts = np.bincount(sample_data(count=2_000_000, seed=1) - 1, minlength=100)
    expected = p * counts.sum()
    keep = expected > 20
    expected_kept = expected[keep] / expected[keep].sum() * counts[keep].sum()
    assert chisquare(counts[keep], expected_kept).pvalue > 1e-3
    # the clipped edge bins carry exactly the clipped mass
    assert counts[99] / counts.sum() == pytest.approx(p[99], rel=0.2)
