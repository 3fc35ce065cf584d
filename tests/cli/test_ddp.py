"""Two-process DDP (gloo, CPU): exact evaluation metrics, one writer of files and W&B media."""

from __future__ import annotations

import csv
import json

import pytest
import pytorch_lightning as pl

from ar_models import Histogram
from datamodules import WarmupDataModule

# 10,003 samples: 8,002 train (1,601 validation at 0.2001), 2,001 test, so neither evaluation
# set splits evenly over 2 ranks and a padded (repeating) sampler would change the means.
DATA = {"count": 10003, "val_fraction": 0.2001}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    import os

    from tests.conftest import _run_cli

    root = tmp_path_factory.mktemp("ddp") / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", OMP_NUM_THREADS="1")
    proc = _run_cli(
        [
            "fit",
            "--config=configs/hw1/warmup.yaml",
            "--trainer.strategy=ddp",
            "--trainer.devices=2",
            "--trainer.accelerator=cpu",
            "--trainer.max_epochs=2",
            f"--data.init_args.count={DATA['count']}",
            f"--data.init_args.val_fraction={DATA['val_fraction']}",
            f"--trainer.default_root_dir={root}",
            "--trainer.enable_progress_bar=false",
        ],
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def test_logged_metrics_equal_a_single_process_evaluation(ddp_run):
    results = json.loads((ddp_run / "results.json").read_text())
    rows = list(csv.DictReader(open(ddp_run / "metrics.csv")))
    logged_val = {int(r["epoch"]): float(r["val/bpd"]) for r in rows if r.get("val/bpd")}
    model = Histogram.load_from_checkpoint(results["checkpoint"])
    epoch = int(results["checkpoint"].split("best-epoch")[1].split("-")[0])
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    data = WarmupDataModule(**DATA)
    val = trainer.validate(model, datamodule=data, verbose=False)[0]["val/bpd"]
    test = trainer.test(model, datamodule=data, verbose=False)[0]["test/bpd"]
    assert logged_val[epoch] == pytest.approx(val, abs=1e-5)
    assert results["test/bpd"] == pytest.approx(test, abs=1e-5)


def test_each_rank_trains_on_half_of_each_epoch(ddp_run):
    rows = list(csv.DictReader(open(ddp_run / "metrics.csv")))
    steps = [int(r["step"]) for r in rows if r.get("train/bpd")]
    # 6,401 training examples: 3,200 per rank (one dropped), 25 batches of 128, 2 epochs
    assert steps == list(range(50))


def test_rank_zero_alone_writes_files_and_wandb(ddp_run):
    assert (ddp_run / "figures" / "loss_curves.png").is_file()
    assert (ddp_run / "figures" / "category_bars.png").is_file()
    assert len(list((ddp_run / "wandb").glob("offline-run-*"))) == 1
    assert [p.name for p in ddp_run.iterdir() if p.suffix == ".json"] == ["results.json"]
