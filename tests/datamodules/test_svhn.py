"""SVHN data: the .mat format, exact split sizes, the stand-in, and bad files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.io import savemat

from ar_models.errors import DataError
from datamodules.base import Split
from datamodules.svhn import SVHN_TRAIN, SVHN_VAL, SVHNDataModule, load_svhn_mat


def write_mat(path, n: int, seed: int = 0, **overrides) -> None:
    """An SVHN-format file: X uint8 32×32×3×N, y uint8 N×1 in 1..10 (10 is the digit 0)."""
    rng = np.random.default_rng(seed)
    data = {
        "X": rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8),
        "y": rng.integers(1, 11, size=(n, 1)).astype(np.uint8),
    }
    data.update(overrides)
    savemat(path, {k: v for k, v in data.items() if v is not None})


@pytest.fixture
def svhn_dir(tmp_path):
    write_mat(tmp_path / "train_32x32.mat", 50, seed=0)
    write_mat(tmp_path / "test_32x32.mat", 17, seed=1)
    return tmp_path


def test_split_sizes_and_batches_from_mat_files(svhn_dir):
    data = SVHNDataModule(data_dir=str(svhn_dir), batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # real files: no stand-in warning
        data.setup()
    # the default val_fraction 7,326/73,257 rounds to 5 of 50
    assert (len(data.train), len(data.val), len(data.test)) == (45, 5, 17)
    x, y = next(iter(data.train_dataloader()))
    assert x.dtype == torch.long and x.shape == (8, 3, 32, 32)
    assert 0 <= int(x.min()) and int(x.max()) <= 255
    assert y.dtype == torch.long and 0 <= int(y.min()) and int(y.max()) <= 9


def test_layout_and_label_ten_is_zero(tmp_path):
    x = np.zeros((32, 32, 3, 2), np.uint8)
    x[5, 7, 2, 1] = 200  # row 5, column 7, blue, image 1
    path = tmp_path / "train_32x32.mat"
    write_mat(path, 2, X=x, y=np.array([[10], [3]], np.uint8))
    images, labels = load_svhn_mat(path)
    assert images.shape == (2, 3, 32, 32) and images[1, 2, 5, 7] == 200 and images.sum() == 200
    assert labels.tolist() == [0, 3]


def test_real_sizes_give_the_handout_split(monkeypatch):
    """73,257 training images → exactly 65,931 train / 7,326 validation with the default."""
    fake = Split(torch.zeros(SVHN_TRAIN, 1, dtype=torch.uint8), torch.zeros(SVHN_TRAIN))
    test = Split(torch.zeros(26_032, 1, dtype=torch.uint8), torch.zeros(26_032))
    data = SVHNDataModule()
    monkeypatch.setattr(data, "load", lambda: (fake, test))
    data.setup()
    assert (len(data.train), len(data.val), len(data.test)) == (65_931, SVHN_VAL, 26_032)


def test_split_is_seeded(svhn_dir):
    a, b = SVHNDataModule(str(svhn_dir), seed=3), SVHNDataModule(str(svhn_dir), seed=3)
    a.setup()
    b.setup()
    assert torch.equal(a.val.x, b.val.x)


def test_stand_in_only_without_data_dir_said_once_in_one_line_and_8bit(caplog):
    data = SVHNDataModule(batch_size=16)
    with caplog.at_level("WARNING", logger="datamodules"):
        data.setup()
        data.setup()
    said = [r.getMessage() for r in caplog.records if "STAND-IN" in r.getMessage()]
    assert len(said) == 1 and "\n" not in said[0] and "NOT SVHN" in said[0]
    assert data.uses_stand_in
    assert (len(data.train) + len(data.val), len(data.test)) == (4000, 1000)
    x, y = next(iter(data.test_dataloader()))
    assert x.dtype == torch.long and x.shape == (16, 3, 32, 32)
    assert len(torch.unique(data.train.x)) > 200  # 8-bit values, not a few levels


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"y": None}, "missing key"),
        ({"X": np.zeros((28, 28, 3, 4), np.uint8)}, "32×32×3×N"),
        ({"X": np.zeros((32, 32, 3, 4), np.float32)}, "uint8"),
        ({"y": np.full((3, 1), 1, np.uint8)}, "4 labels"),
        ({"y": np.zeros((4, 1), np.uint8)}, "1..10"),
    ],
)
def test_bad_mat_files_name_the_file(tmp_path, overrides, message):
    path = tmp_path / "train_32x32.mat"
    write_mat(path, 4, **overrides)
    with pytest.raises(DataError, match=message) as error:
        load_svhn_mat(path)
    assert str(path) in str(error.value)


def test_not_a_mat_file(tmp_path):
    path = tmp_path / "test_32x32.mat"
    path.write_bytes(b"not matlab")
    with pytest.raises(DataError, match="cannot read") as error:
        load_svhn_mat(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("content", ["empty", "absent", "only_train"])
def test_a_data_dir_without_the_files_is_an_error_naming_the_folder(tmp_path, content):
    """Never the stand-in for a folder that was given: a mistyped path must not train on other
    data. Raised when the module is built."""
    folder = tmp_path / "svhn"
    if content != "absent":
        folder.mkdir()
    if content == "only_train":
        write_mat(folder / "train_32x32.mat", 4)
    with pytest.raises(DataError) as error:
        SVHNDataModule(data_dir=str(folder))
    message = str(error.value)
    assert message.startswith(f"{folder}: ") and "\n" not in message
    assert "test_32x32.mat" in message and "download: true" in message
    if content == "only_train":
        assert "missing test_32x32.mat;" in message
    if content == "absent":
        assert "no such folder" in message


def test_download_needs_a_folder():
    with pytest.raises(DataError, match="download: true needs data_dir"):
        SVHNDataModule(download=True)


def test_through_the_cli_one_line_naming_the_folder_and_exit_status_2(run_cli, tmp_path):
    folder = tmp_path / "no-svhn-here"
    folder.mkdir()
    result = run_cli(
        [
            "fit",
            "--config=configs/hw3/svhn_vae_quick.yaml",
            f"--data.init_args.data_dir={folder}",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            "--trainer.fast_dev_run=true",
        ]
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(folder) in errors[0] and "train_32x32.mat" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # stopped before anything ran


def test_failed_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    data = SVHNDataModule(data_dir=str(tmp_path / "svhn"), download=True)
    with pytest.raises(DataError, match="train_32x32.mat, test_32x32.mat") as error:
        data.prepare_data()
    assert "download" in str(error.value) and str(tmp_path / "svhn") in str(error.value)
    assert list((tmp_path / "svhn").iterdir()) == []  # no partial file left
