"""W&B without credentials: an offline run whose config is the whole resolved config, continued
by a resumed fit under the same run id, and a start-up without messages the user cannot act on."""

from __future__ import annotations

import pytest

from tests.cli.wandb_records import run_config, run_id
from tests.conftest import _run_cli

NOISE = ("anonymous setting", "litlogger", "LeafSpec", "Checkpoint directory")


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """One epoch with batch size 64 and seed 7, offline; then resumed for a second epoch."""
    import os

    base = tmp_path_factory.mktemp("wandb")
    home = base / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(home), OMP_NUM_THREADS="1")  # no ~/.netrc: no credentials
    root = base / "run"
    common = [
        "--config=configs/hw1/warmup.yaml",
        "--data.init_args.batch_size=64",
        "--seed_everything=7",
        f"--trainer.default_root_dir={root}",
        "--trainer.enable_progress_bar=false",
    ]
    first = _run_cli(["fit", *common, "--trainer.max_epochs=1"], env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    second = _run_cli(
        ["fit", *common, "--trainer.max_epochs=2", "--ckpt_path=last"], env=env, timeout=300
    )
    assert second.returncode == 0, second.stderr[-3000:]
    return root, first, second


def offline_runs(root):
    return sorted((root / "wandb").glob("offline-run-*"))


def test_the_wandb_config_is_the_resolved_config(resumed_run):
    root, _, _ = resumed_run
    config = run_config(offline_runs(root)[0])
    assert config["data"]["init_args"]["batch_size"] == 64
    assert config["seed_everything"] == 7
    assert config["model"]["class_path"] == "ar_models.Histogram"
    assert config["trainer"]["max_epochs"] == 1
    callbacks = [c["class_path"] for c in config["trainer"]["callbacks"]]
    assert callbacks == ["callbacks.CategoryBars"]


def test_a_resumed_fit_continues_the_same_wandb_run(resumed_run):
    root, first, second = resumed_run
    runs = offline_runs(root)
    assert len(runs) == 2  # one offline folder per process, both of the same run
    saved = (root / "wandb" / "run-id").read_text().strip()
    assert [run_id(r) for r in runs] == [saved, saved]
    assert run_config(runs[1])["trainer"]["max_epochs"] == 2


def test_offline_mode_is_announced_and_nothing_else_is_noise(resumed_run):
    _, first, second = resumed_run
    assert "W&B: no credentials found, logging offline" in first.stdout + first.stderr
    for proc in (first, second):
        output = proc.stdout + proc.stderr
        assert not [n for n in NOISE if n in output], output[-3000:]
