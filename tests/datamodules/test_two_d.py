"""HW1 §2 data: the default portrait distribution, seeded splits, sampling, and bad user files."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from ar_models.errors import DataError
from datamodules.two_d import (
    Distribution2DDataModule,
    entropy_bits,
    image_distribution,
    sample_pairs,
)


@pytest.fixture(scope="module")
def default_dm() -> Distribution2DDataModule:
    dm = Distribution2DDataModule()
    dm.setup()
    return dm


def test_default_distribution_is_the_portrait(default_dm: Distribution2DDataModule) -> None:
    d = default_dm.distribution
    assert d.shape == (200, 200) and d.dtype == np.float64
    assert (d >= 0).all() and abs(d.sum() - 1.0) < 1e-12
    assert default_dm.n_categories == 200
    h = -(d[d > 0] * np.log2(d[d > 0])).sum() / 2
    assert default_dm.entropy_bpd == pytest.approx(h)
    assert 6.0 < default_dm.entropy_bpd < np.log2(200)  # a spread-out but not uniform image


def test_split_sizes_and_batches(default_dm: Distribution2DDataModule) -> None:
    sizes = (len(default_dm.train), len(default_dm.val), len(default_dm.test))
    assert sizes == (72000, 8000, 20000)
    batch = next(iter(default_dm.train_dataloader()))
    assert batch.shape == (128, 2) and batch.dtype == torch.long
    for split in (default_dm.train, default_dm.val, default_dm.test):
        assert split.x.min() >= 0 and split.x.max() < 200


def test_test_is_the_last_20_percent_of_the_seeded_draws(
    default_dm: Distribution2DDataModule,
) -> None:
    draws = torch.from_numpy(sample_pairs(default_dm.distribution, 100000, seed=0))
    assert torch.equal(default_dm.test.x, draws[80000:])
    train_val = torch.cat([default_dm.train.x, default_dm.val.x])
    key = lambda x: (x[:, 0] * 200 + x[:, 1]).sort().values  # noqa: E731
    assert torch.equal(key(train_val), key(draws[:80000]))


def test_seeding(tmp_path: Path) -> None:
    def splits(**kw: int) -> list[torch.Tensor]:
        dm = Distribution2DDataModule(count=5000, **kw)
        dm.setup()
        return [dm.train.x, dm.val.x, dm.test.x]

    a, b = splits(), splits()
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(splits(data_seed=1)[2], a[2])  # other draws
    c = splits(seed=1)  # same draws, other validation split
    assert torch.equal(c[2], a[2]) and not torch.equal(c[1], a[1])


def save(tmp_path: Path, array: np.ndarray, name: str = "distribution.npy") -> str:
    path = tmp_path / name
    np.save(path, array)
    return str(path)


def test_user_file_rows_are_x1_and_columns_x2(tmp_path: Path) -> None:
    p = np.zeros((4, 4))
    p[1, 3] = 0.75
    p[2, 0] = 0.25
    dm = Distribution2DDataModule(path=save(tmp_path, p), count=4000)
    dm.setup()
    assert dm.n_categories == 4
    x = torch.cat([dm.train.x, dm.val.x, dm.test.x]).numpy()
    pairs, counts = np.unique(x, axis=0, return_counts=True)
    assert pairs.tolist() == [[1, 3], [2, 0]]
    assert abs(counts[0] / 4000 - 0.75) < 0.03
    assert dm.entropy_bpd == pytest.approx(entropy_bits(p) / 2)


def test_sampling_matches_the_distribution(tmp_path: Path) -> None:
    p = np.random.RandomState(0).rand(5, 5)
    p /= p.sum()
    x = sample_pairs(p, 200000, seed=3)
    freq = np.bincount(x[:, 0] * 5 + x[:, 1], minlength=25).reshape(5, 5) / len(x)
    assert np.abs(freq - p).max() < 0.005


def test_float32_file_within_rounding_is_accepted_silently(tmp_path: Path) -> None:
    p = np.random.RandomState(1).rand(30, 30).astype(np.float32)
    p /= p.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dm = Distribution2DDataModule(path=save(tmp_path, p))
    assert dm.distribution.dtype == np.float64 and abs(dm.distribution.sum() - 1) < 1e-12


def test_slightly_off_sum_is_renormalised_with_a_warning(tmp_path: Path) -> None:
    p = np.full((10, 10), 1.0005 / 100)
    path = save(tmp_path, p)
    with pytest.warns(UserWarning, match=re.escape(path) + ".*renormalised"):
        dm = Distribution2DDataModule(path=path)
    np.testing.assert_allclose(dm.distribution, np.full((10, 10), 0.01))


def square(k: int = 6) -> np.ndarray:
    return np.full((k, k), 1.0 / k**2)


def with_entry(value: float) -> np.ndarray:
    p = square()
    p[2, 3] = value
    return p


BAD_ARRAYS = {
    "one_d": (np.full(36, 1 / 36), "not 2-D"),
    "three_d": (np.full((3, 3, 4), 1 / 36), "not 2-D"),
    "not_square": (np.full((4, 9), 1 / 36), "square"),
    "one_by_one": (np.ones((1, 1)), "square"),
    "negative": (with_entry(-1 / 36) / (1 - 2 / 36), "negative"),
    "nan": (with_entry(np.nan), "NaN or infinite"),
    "inf": (with_entry(np.inf), "NaN or infinite"),
    "sum_half": (square() / 2, "sum to 0.5"),
    "zeros": (np.zeros((6, 6)), "sum to 0"),
    "counts": (np.ones((6, 6)), "sum to 36"),
    "complex": (square().astype(complex), "complex"),
    "boolean": (np.eye(6, dtype=bool), "bool"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARRAYS))
def test_bad_user_file_raises_data_error_naming_the_file(tmp_path: Path, case: str) -> None:
    array, reason = BAD_ARRAYS[case]
    path = save(tmp_path, array, f"{case}.npy")
    with pytest.raises(DataError, match=re.escape(path) + ".*" + re.escape(reason)):
        Distribution2DDataModule(path=path)


def test_missing_unreadable_and_npz_files(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.npy")
    with pytest.raises(DataError, match=re.escape(missing) + ".*no such file"):
        Distribution2DDataModule(path=missing)
    garbage = tmp_path / "garbage.npy"
    garbage.write_text("not an array")
    with pytest.raises(DataError, match=re.escape(str(garbage)) + ".*not a readable .npy"):
        Distribution2DDataModule(path=str(garbage))
    npz = tmp_path / "two.npz"
    np.savez(npz, a=square(), b=square())
    with pytest.raises(DataError, match=re.escape(str(npz)) + ".*several arrays"):
        Distribution2DDataModule(path=str(npz))
    obj = tmp_path / "object.npy"
    np.save(obj, np.array([[1, None], [None, 1]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=re.escape(str(obj))):
        Distribution2DDataModule(path=str(obj))


def test_image_distribution_is_normalised_area_mean_of_luminance(tmp_path: Path) -> None:
    rgb = np.random.RandomState(0).rand(4, 6, 3)
    path = str(tmp_path / "image.png")
    matplotlib.image.imsave(path, rgb)
    stored = matplotlib.image.imread(path)[..., :3].astype(np.float64)  # 8-bit round trip
    grey = stored @ np.array([0.299, 0.587, 0.114])
    blocks = grey.reshape(2, 2, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(image_distribution(path, size=2), blocks / blocks.sum())


def test_bad_arguments() -> None:
    with pytest.raises(DataError, match="count"):
        Distribution2DDataModule(count=0)
    with pytest.raises(DataError, match="size"):
        Distribution2DDataModule(size=1)
