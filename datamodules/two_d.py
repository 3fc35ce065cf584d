"""HW1 §2 data: draws from a K×K joint distribution p(x1, x2) over pairs of categories.

By default the distribution is the portrait ``grace_hopper.jpg`` that matplotlib ships: luminance
``0.299 R + 0.587 G + 0.114 B`` (what PIL's ``convert('L')``, used by the handout, computes),
resized to ``size × size`` by area averaging, divided by its sum. A user may pass instead any
``distribution.npy``: a square float array ``[K, K]`` (K ≥ 2), finite, non-negative, summing to 1.

Batches are ``LongTensor[B, 2]``: ``x1`` = row index, ``x2`` = column index of the array, both in
{0..K-1}, drawn like the handout's ``sample_data`` (``np.random.RandomState(data_seed).choice``
over the flattened pairs). The first 80% of the draws are train, the last 20% test; validation is
carved from train by :class:`~datamodules.base.ArrayDataModule`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import matplotlib.cbook
import matplotlib.image
import numpy as np
import torch
import torch.nn.functional as F

from ar_models.errors import DataError, check
from datamodules.base import (
    ArrayDataModule,
    Split,
    split_first_last,
)

#: weights of R, G, B in the luminance (ITU-R BT.601, as PIL's ``convert('L')``).
LUMINANCE = np.array([0.299, 0.587, 0.114])
#: a sum within this distance of 1 is floating-point rounding: divided by itself, no warning.
ROUNDING_TOLERANCE = 1e-6


def default_image_path() -> str:
    """Path of the portrait ``grace_hopper.jpg`` in matplotlib's sample data (no download)."""
    return str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def image_distribution(path: str, size: int = 200) -> np.ndarray:
    """The image at ``path`` as a distribution ``[size, size]`` (float64, sums to 1).

    Grey = luminance of RGB (a grey image is used as is; alpha is dropped), resized by area
    averaging (``F.interpolate(mode='area')``, exact block means when ``size`` divides the sides).
    """
    try:
        image = np.asarray(matplotlib.image.imread(path), dtype=np.float64)
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: cannot read the image ({error})") from None
    if image.ndim == 3:
        image = image[..., :3] @ LUMINANCE if image.shape[-1] >= 3 else image[..., 0]
    grey = torch.from_numpy(np.ascontiguousarray(image))[None, None]
    resized = F.interpolate(grey, size=(size, size), mode="area")[0, 0].numpy()
    total = resized.sum()
    if not total > 0:
        raise DataError(f"{path}: the image is black everywhere; expected some positive pixels")
    return resized / total


def load_distribution(path: str | Path, sum_tolerance: float = 1e-3) -> np.ndarray:
    """Read and check a user's ``distribution.npy``; returns float64 ``[K, K]`` summing to 1.

    Accepted: a numeric (not boolean, not complex) square 2-D array, K ≥ 2, all entries finite and
    ≥ 0, summing to 1. A sum off by at most ``sum_tolerance`` is renormalised with a warning (at
    most 1e-6 counts as rounding and is renormalised silently); anything else raises
    :class:`DataError` naming the file.
    """
    path = str(path)
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file; expected a .npy array of shape [K, K]")
    with open(path, "rb") as file:
        magic = file.read(6)
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):  # neither .npy nor .npz
        raise DataError(
            f"{path}: not a readable .npy file: it lacks the .npy header (a text or CSV file? load "
            "it and save the array with np.save); expected np.save of a [K, K] array"
        )
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(
            f"{path}: not a readable .npy array ({error}); expected np.save of a [K, K] array"
        ) from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: holds several arrays (.npz); expected one [K, K] .npy array")
    if array.dtype.kind not in "uif":
        raise DataError(f"{path}: dtype {array.dtype}; expected a real numeric [K, K] array")
    if array.ndim != 2:
        raise DataError(f"{path}: shape {array.shape} is not 2-D; expected a [K, K] array")
    if array.shape[0] != array.shape[1] or array.shape[0] < 2:
        raise DataError(f"{path}: shape {array.shape}; expected a square [K, K] array with K >= 2")
    dist = array.astype(np.float64)
    bad = ~np.isfinite(dist)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{path}: {int(bad.sum())} entries are NaN or infinite (first at {where}); "
            "expected finite probabilities"
        )
    if (dist < 0).any():
        where = tuple(int(i) for i in np.argwhere(dist < 0)[0])
        raise DataError(
            f"{path}: {int((dist < 0).sum())} entries are negative (first at {where}, "
            f"{dist[where]:g}); expected probabilities >= 0"
        )
    total = float(dist.sum())
    if abs(total - 1.0) > sum_tolerance:
        raise DataError(
            f"{path}: entries sum to {total:.8g}; expected 1 (a sum within {sum_tolerance:g} of 1 "
            "is renormalised)"
        )
    if abs(total - 1.0) > ROUNDING_TOLERANCE:
        warnings.warn(
            f"{path}: entries sum to {total:.8g}, not 1; renormalised (divided by the sum)",
            stacklevel=2,
        )
    return dist / total


def entropy_bits(dist: np.ndarray) -> float:
    """Shannon entropy ``-Σ p log2 p`` of a distribution in bits (0 log 0 = 0)."""
    p = dist[dist > 0]
    return float(-(p * np.log2(p)).sum())


def sample_pairs(dist: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` draws ``[count, 2]`` (row, column) of ``dist``, like the handout's sample_data."""
    k = dist.shape[1]
    flat = np.random.RandomState(seed).choice(dist.size, size=count, p=dist.reshape(-1))
    return np.stack([flat // k, flat % k], axis=1)


class Distribution2DDataModule(ArrayDataModule):
    """HW1 §2: ``count`` seeded draws of a K×K distribution; first 80% train, last 20% test.

    The distribution is read (and checked) when the DataModule is built, so bad input stops the
    run before any training.

    Attributes:
        distribution: the true p(x1, x2), ``np.ndarray`` float64 ``[K, K]`` summing to 1.
        n_categories: K.
        entropy_bpd: entropy of ``distribution`` in bits per dimension (bits / 2), the floor of
            any model's expected NLL.

    Args:
        path: a ``distribution.npy`` (see :func:`load_distribution`); ``None`` for the portrait.
        size: side of the portrait distribution (ignored when ``path`` is given).
        count: number of draws (the handout's 100,000).
        data_seed: seed of the draws.
        sum_tolerance: how far from 1 the sum of a user's array may be and still be renormalised.
        kwargs: ``batch_size``, ``val_fraction``, ``seed``, ``num_workers`` of
            :class:`~datamodules.base.ArrayDataModule`.
    """

    def __init__(
        self,
        path: str | None = None,
        size: int = 200,
        count: int = 100000,
        data_seed: int = 0,
        sum_tolerance: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check(DataError, count=count, integer=True, minimum=1)
        check(DataError, size=size, integer=True, minimum=1)
        if size < 2:
            raise DataError(f"size must be >= 2, got {size}")
        if not 0 <= sum_tolerance < 1:
            raise DataError(f"sum_tolerance must be in [0, 1), got {sum_tolerance!r}")
        self.path = path
        self.count = count
        self.data_seed = data_seed
        if path is None:
            self.distribution = image_distribution(default_image_path(), size)
        else:
            self.distribution = load_distribution(path, sum_tolerance)
        self.n_categories = int(self.distribution.shape[0])
        self.entropy_bpd = entropy_bits(self.distribution) / 2

    def load(self) -> tuple[Split, Split]:
        pairs = sample_pairs(self.distribution, self.count, self.data_seed)
        return split_first_last(Split(torch.from_numpy(pairs).long()))
