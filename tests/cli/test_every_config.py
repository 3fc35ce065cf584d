"""Every config under ``configs/`` parses and runs one training and one validation batch on the
CPU (``--trainer.fast_dev_run 1``, batches of 2, the figures drawn at the end of fit), each into its
own temporary run folder.

The configs are globbed, so a new config is run here without being listed. Those whose step and
end-of-fit figures cost many seconds on one CPU core are marked slow (``SLOW``); those that a
default test elsewhere already runs through the whole CLI (fit, then the test of the best
checkpoint into ``results.json``) are left to it (``run_elsewhere``). A test checks that these lists
cover every config:

    python -m pytest tests/cli/test_every_config.py              # the default ones
    python -m pytest -m slow tests/cli/test_every_config.py      # the slow ones
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

CONFIG_ROOT = REPO_ROOT / "configs"
#: every config, as its path under configs/ (``hw1/warmup.yaml``).
CONFIGS = sorted(p.relative_to(CONFIG_ROOT).as_posix() for p in CONFIG_ROOT.rglob("*.yaml"))
#: configs whose fast_dev_run is slow on a CPU: the GPU-sized PixelVAE (its interpolations and
#: reconstructions draw every pixel in turn) and the HW1 §2 models (the density figure evaluates all
#: 200² states and 100,000 samples; tests/ar_models/test_2d_configs.py trains both, also slow).
SLOW = {"hw1/ar_mlp_2d.yaml", "hw1/made_2d.yaml", "hw3/pixelvae.yaml"}


def run_elsewhere() -> set[str]:
    """The configs that tests/vae_models/test_hw3_configs.py runs in the default suite (a few
    steps through the CLI, then the test into results.json): its unmarked ``QUICK`` names."""
    from tests.vae_models.test_hw3_configs import QUICK

    names = set()
    for entry in QUICK:
        values, marks = getattr(entry, "values", (entry,)), getattr(entry, "marks", ())
        if not any(mark.name == "slow" for mark in marks):
            names.add(f"hw3/{values[0]}.yaml")
    return names


DEFAULT = [name for name in CONFIGS if name not in SLOW | run_elsewhere()]


def fast_dev_run(name: str, root: Path, monkeypatch: pytest.MonkeyPatch):
    """``train.py fit --config <name> --trainer.fast_dev_run 1`` on the CPU into ``root``, with
    batches of 2; the CLI object (its ``model`` and ``trainer``)."""
    import train

    monkeypatch.setattr(sys, "argv", ["train.py"])
    monkeypatch.setenv("WANDB_MODE", "disabled")
    return train.DeepulCLI(
        args=[
            "fit",
            f"--config={CONFIG_ROOT / name}",
            f"--trainer.default_root_dir={root}",
            "--trainer.fast_dev_run=1",
            "--trainer.accelerator=cpu",
            "--trainer.devices=1",
            "--trainer.enable_progress_bar=false",
            "--data.init_args.batch_size=2",
        ]
    )


def check_run(name: str, root: Path, cli) -> None:
    """The run built the config's model, took its step, finished and drew its loss curves."""
    import train

    wanted = cli.config["fit"]["model"]["class_path"]
    assert type(cli.model) is train.import_object(wanted)
    assert cli.trainer.global_step == 1
    assert cli.trainer.state.finished
    assert (root / "figures" / "loss_curves.png").is_file(), sorted(root.rglob("*"))
    if cli.config["fit"].get("prior_fit"):  # the config's prior fit joins the callbacks
        assert any(type(c).__name__ == "FitPrior" for c in cli.trainer.callbacks)


@pytest.mark.parametrize("name", DEFAULT)
def test_config_runs_a_step(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_run(name, tmp_path, fast_dev_run(name, tmp_path, monkeypatch))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_slow_config_runs_a_step(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_run(name, tmp_path, fast_dev_run(name, tmp_path, monkeypatch))


def parametrised_names(test) -> list[str]:
    """The config names a test above is parametrised over (read from its pytest mark)."""
    (mark,) = [m for m in test.pytestmark if m.name == "parametrize"]
    return list(mark.args[1])


def test_every_config_is_run_by_a_test() -> None:
    assert len(CONFIGS) >= 17, CONFIGS  # the glob found the configs
    elsewhere = run_elsewhere()
    stale = (SLOW | elsewhere) - set(CONFIGS)
    assert not stale, f"listed configs that do not exist: {sorted(stale)}"
    default = parametrised_names(test_config_runs_a_step)
    slow = parametrised_names(test_slow_config_runs_a_step)
    assert not set(default) & set(slow) and not (set(default) | set(slow)) & elsewhere
    assert sorted(default + slow + sorted(elsewhere)) == CONFIGS
