"""End to end: `python train.py fit --config configs/hw1/warmup.yaml` leaves every file of a run and
reaches the test NLL of the true data-generating law to within 0.02 bits."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from datamodules.warmup import sample_data, true_probabilities


def true_test_nll_bits() -> float:
    """Test NLL (bits) of the exact law of ``sample_data`` on the last 20% of its samples."""
    test = sample_data()[8000:] - 1
    return float(-np.log2(true_probabilities()[test]).mean())


@pytest.fixture(scope="module")
def warmup_run(tmp_path_factory, request):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    root = tmp_path_factory.mktemp("warmup_run")
    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["HOME"] = str(home)  # no ~/.netrc: no W&B credentials
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "fit",
            "--config",
            "configs/hw1/warmup.yaml",
            f"--trainer.default_root_dir={root / 'run'}",
            "--trainer.enable_progress_bar=false",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run", proc


def test_run_folder_has_every_file(warmup_run):
    run, _ = warmup_run
    assert (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "checkpoints").glob("best-*.ckpt"))
    for name in ("loss_curves", "category_bars"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000


def test_metrics_csv_has_train_steps_and_val_epochs(warmup_run):
    run, _ = warmup_run
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    train_steps = [int(r["step"]) for r in rows if r.get("train/bpd")]
    val_epochs = [int(r["epoch"]) for r in rows if r.get("val/bpd")]
    n_batches = -(-6400 // 128)  # 8,000 train × (1 - 0.2 val) in batches of 128
    assert train_steps == list(range(30 * n_batches))
    assert val_epochs == list(range(30))


def test_wandb_offline_run_holds_the_figures(warmup_run):
    run, proc = warmup_run
    assert "W&B: no credentials found, logging offline" in proc.stdout + proc.stderr
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    media = {p.name.split("_")[0] for p in offline[0].rglob("*.png")}
    assert {"loss", "category"} <= media  # loss_curves_*.png, category_bars_*.png


def test_results_json_is_within_002_bits_of_the_true_law(warmup_run):
    run, _ = warmup_run
    results = json.loads((run / "results.json").read_text())
    bound = true_test_nll_bits()
    assert 5.7 < bound < 5.9
    assert results["test/bpd"] >= bound - 0.05  # cannot beat the truth by much on 2,000 samples
    assert results["test/bpd"] - bound < 0.02, (results["test/bpd"], bound)
    assert "best-" in results["checkpoint"]
