"""HW3 §1 data: the handout's samplers, the 80/20 split, batches, and the exact laws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chi2

from datamodules import DataError
from datamodules.toy2d import (
    Toy2DDataModule,
    gaussian_entropy_bpd,
    sample_data_1,
    sample_data_2,
    sample_data_3,
    true_gaussian,
    true_log_prob,
    true_nll_bpd,
)


def handout_1():  # verbatim from the course notebook
    count = 100000
    rand = np.random.RandomState(0)
    return [[1.0, 2.0]] + (rand.randn(count, 2) * [[5.0, 1.0]]).dot(
        [[np.sqrt(2) / 2, np.sqrt(2) / 2], [-np.sqrt(2) / 2, np.sqrt(2) / 2]]
    )


def handout_2():
    count = 100000
    rand = np.random.RandomState(0)
    return [[-1.0, 2.0]] + (rand.randn(count, 2) * [[1.0, 5.0]]).dot(
        [[np.sqrt(2) / 2, np.sqrt(2) / 2], [-np.sqrt(2) / 2, np.sqrt(2) / 2]]
    )


def handout_3():
    count = 100000
    rand = np.random.RandomState(0)
    a = [[-1.5, 2.5]] + rand.randn(count // 3, 2) * 0.2
    b = [[1.5, 2.5]] + rand.randn(count // 3, 2) * 0.2
    c = np.c_[
        2 * np.cos(np.linspace(0, np.pi, count // 3)), -np.sin(np.linspace(0, np.pi, count // 3))
    ]
    c += rand.randn(*c.shape) * 0.2
    data_x = np.concatenate([a, b, c], axis=0)
    data_y = np.array([0] * len(a) + [1] * len(b) + [2] * len(c))
    perm = rand.permutation(len(data_x))
    return data_x[perm], data_y[perm]


def test_samplers_are_the_handouts():
    np.testing.assert_array_equal(sample_data_1(), handout_1())
    np.testing.assert_array_equal(sample_data_2(), handout_2())
    for ours, theirs in zip(sample_data_3(), handout_3(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("dataset", [1, 2])
def test_unlabelled_split_and_batches(dataset):
    data = Toy2DDataModule(dataset=dataset, batch_size=32, val_fraction=0.1)
    data.setup()
    assert (len(data.train), len(data.val), len(data.test)) == (72000, 8000, 20000)
    x = torch.from_numpy(sample_data_1() if dataset == 1 else sample_data_2()).float()
    assert torch.equal(data.test.x, x[80000:])  # the last 20%, in order
    merged = torch.cat([data.train.x, data.val.x]).numpy()
    first = x[:80000].numpy()
    rows = np.lexsort(merged.T)
    np.testing.assert_array_equal(merged[rows], first[np.lexsort(first.T)])  # train ∪ val
    batch = next(iter(data.train_dataloader()))
    assert isinstance(batch, torch.Tensor) and batch.dtype == torch.float32
    assert batch.shape == (32, 2)


def test_labelled_split_and_batches():
    data = Toy2DDataModule(dataset=3, batch_size=16)
    data.setup()
    x, y = sample_data_3()
    n_train = int(round(len(x) * 0.8))
    assert len(data.train) + len(data.val) == n_train and len(data.test) == len(x) - n_train
    assert torch.equal(data.test.y, torch.from_numpy(y[n_train:]).long())
    bx, by = next(iter(data.train_dataloader()))
    assert bx.shape == (16, 2) and bx.dtype == torch.float32
    assert by.shape == (16,) and by.dtype == torch.long
    assert set(data.train.y.unique().tolist()) == {0, 1, 2}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dataset": 4}, "dataset must be one of"),
        ({"dataset": 0}, "dataset must be one of"),
        ({"dataset": True}, "dataset must be one of"),
        ({"count": 0}, "count must be a positive integer"),
        ({"dataset": 3, "count": 2}, "dataset 3 needs count >= 3"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(DataError, match=message):
        Toy2DDataModule(**kwargs)


@pytest.mark.parametrize("dataset", [1, 2])
def test_true_gaussian_matches_the_samples(dataset):
    mean, cov = true_gaussian(dataset)
    x = sample_data_1() if dataset == 1 else sample_data_2()
    np.testing.assert_allclose(x.mean(0), mean, atol=0.05)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.25)
    assert np.allclose(np.linalg.eigvalsh(cov), [1.0, 25.0])


def test_entropy_floor_and_the_test_nll_of_the_truth():
    _, cov = true_gaussian(1)
    floor = gaussian_entropy_bpd(cov)
    # H = log(2πe) + ½ log 25 nats over 2 dims
    assert floor == pytest.approx(
        (math.log(2 * math.pi * math.e) + 0.5 * math.log(25)) / (2 * math.log(2))
    )
    assert floor == pytest.approx(3.208, abs=5e-4)
    test_nll = true_nll_bpd(sample_data_1()[80000:], 1)
    # -log p of a 2-D Gaussian point has std 1 nat: the test mean is within ~4 SE of the entropy
    assert abs(test_nll - floor) < 4 * 1.0 / math.sqrt(20000) / (2 * math.log(2))


def test_true_law_of_dataset_3_is_normalised_and_fits_fresh_draws():
    # the density on a fine grid over [-3, 3] x [-2, 4] (the clusters have σ = 0.2)
    step, cell = 0.025, 0.25
    g0, g1 = np.meshgrid(np.arange(-3, 3, step) + step / 2, np.arange(-2, 4, step) + step / 2)
    density = np.exp(true_log_prob(np.c_[g0.ravel(), g1.ravel()], 3, count=3000)).reshape(g0.shape)
    mass = density * step**2
    assert mass.sum() == pytest.approx(1.0, abs=2e-3)
    # χ² of fresh draws (another seed) in 0.25 x 0.25 cells against the integrated density
    k = round(cell / step)
    expected_p = mass.reshape(mass.shape[0] // k, k, mass.shape[1] // k, k).sum((1, 3))
    x, _ = sample_data_3(count=3000, seed=1)
    edges = [np.arange(-2, 4 + cell / 2, cell), np.arange(-3, 3 + cell / 2, cell)]
    counts, _, _ = np.histogram2d(x[:, 1], x[:, 0], bins=edges)  # rows: x1, like the grid
    expected = expected_p * len(x)
    keep = expected > 10
    stat = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum()
    assert chi2.sf(stat, keep.sum() - 1) > 1e-3, (stat, keep.sum())
