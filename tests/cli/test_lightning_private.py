"""The private Lightning names the library uses still exist; each test fails with a message that
says which of our code depends on it, so a Lightning release that changes one is caught here."""

from __future__ import annotations

import configparser

import pytorch_lightning as pl
from packaging.requirements import Requirement
from pytorch_lightning.loggers import WandbLogger

from callbacks.ema import EMA
from callbacks.wandb_run import RunWandbLogger
from tests.conftest import REPO_ROOT


def test_wandb_logger_keeps_the_wandb_init_arguments(tmp_path):
    plain = WandbLogger(save_dir=str(tmp_path), offline=True)
    assert isinstance(getattr(plain, "_wandb_init", None), dict), (
        "WandbLogger no longer keeps wandb.init's arguments in _wandb_init: update "
        "callbacks.wandb_run.RunWandbLogger, which removes 'anonymous' from them"
    )
    assert "anonymous" in plain._wandb_init, (
        "WandbLogger no longer passes anonymous= to wandb.init: RunWandbLogger's removal "
        "of it (and this test) can go"
    )
    ours = RunWandbLogger(tmp_path, resume=False, offline=True)
    assert "anonymous" not in ours._wandb_init
    assert ours._wandb_init["resume"] == "allow", "a resumed fit relies on resume='allow'"


def test_trainer_can_dump_a_checkpoint():
    connector = getattr(pl.Trainer(logger=False), "_checkpoint_connector", None)
    assert callable(getattr(connector, "dump_checkpoint", None)), (
        "Trainer._checkpoint_connector.dump_checkpoint is gone: update "
        "callbacks/stop_checkpoint.py, which saves checkpoints inside on_exception with it"
    )


def test_ema_weight_averaging_keeps_its_average_model():
    assert "_average_model" in vars(EMA(decay=0.9)), (
        "EMAWeightAveraging no longer has _average_model: update callbacks/ema.py "
        "(_follow_until_started reads it)"
    )


def test_the_installed_lightning_is_in_the_range_setup_cfg_states():
    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")
    requirements = [
        Requirement(line) for line in setup["options"]["install_requires"].split("\n") if line
    ]
    (lightning,) = [r for r in requirements if r.name == "pytorch-lightning"]
    assert pl.__version__ in lightning.specifier, (pl.__version__, str(lightning.specifier))
