"""Train, validate, test or sample any model of this library from a YAML config (LightningCLI).

    python train.py fit --config configs/hw1/warmup.yaml [--trainer.max_epochs 5 ...]

``--model`` and ``--data`` take any :class:`ar_models.DensityModel` and any LightningDataModule
(short class names of this library, or full import paths). A ``fit`` run also tests the best
checkpoint, and leaves in ``trainer.default_root_dir`` (default ``runs/<config name>``):
``config.yaml``, ``checkpoints/``, ``figures/``, ``metrics.csv``, ``results.json`` and ``wandb/``.

W&B runs offline unless credentials are configured; ``WANDB_MODE`` always wins and
``WANDB_MODE=disabled`` attaches no W&B logger at all.
"""

from __future__ import annotations

import importlib
import inspect
import json
import netrc
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import Logger, WandbLogger
from pytorch_lightning.utilities import rank_zero_info

import ar_models  # noqa: F401  (registers the model classes for --model)
import callbacks  # noqa: F401  (registers the callbacks for trainer.callbacks)
import datamodules  # noqa: F401  (registers the data modules for --data)
import vae_models  # noqa: F401
from ar_models.allocator import keep_freed_memory
from ar_models.base import DensityModel, ModelConfigError
from callbacks.csv_logger import AppendingCSVLogger
from callbacks.loss_curves import LossCurves
from callbacks.step_seed import StepSeed
from callbacks.stop_checkpoint import StopCheckpoint
from callbacks.timed_checkpoint import TimedCheckpoint
from datamodules.base import DataError

WANDB_PROJECT = "deepul-lightning"
RUNS_DIR = "runs"


def wandb_mode() -> str:
    """``WANDB_MODE`` if set; else ``online`` with credentials (key or netrc), else ``offline``."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1]
        if netrc.netrc().authenticators(host.split("/")[0]):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


def default_loggers(root: str, run_name: str) -> list[Logger]:
    """CSV (always, ``<root>/metrics.csv``) and W&B (``<root>/wandb``) unless W&B is disabled."""
    loggers: list[Logger] = [AppendingCSVLogger(save_dir=root, name="", version="")]
    mode = wandb_mode()
    if mode == "disabled":
        return loggers
    if mode == "offline" and "WANDB_MODE" not in os.environ:
        rank_zero_info(
            f"W&B: no credentials found, logging offline to {root}/wandb "
            "(upload later with `wandb sync`, or set WANDB_MODE)."
        )
    os.environ.setdefault("WANDB_SILENT", "true")
    loggers.append(
        WandbLogger(save_dir=root, name=run_name, project=WANDB_PROJECT, offline=mode == "offline")
    )
    return loggers


def default_callbacks(existing: list[Callback]) -> list[Callback]:
    """Best/last checkpoints on ``val/bpd``, a checkpoint at any early stop and every 10 minutes,
    per-step seeds, and loss curves, unless the config already has them."""
    extra: list[Callback] = []
    if not any(isinstance(c, ModelCheckpoint) for c in existing):
        extra.append(
            ModelCheckpoint(
                monitor="val/bpd",
                mode="min",
                save_last=True,
                filename="best-epoch{epoch}-step{step}",
                auto_insert_metric_name=False,
            )
        )
    if not any(isinstance(c, StopCheckpoint) for c in existing):
        extra.append(StopCheckpoint())
    if not any(isinstance(c, TimedCheckpoint) for c in existing):
        extra.append(TimedCheckpoint())  # last.ckpt every 10 minutes: a kill loses at most that
    if not any(isinstance(c, StepSeed) for c in existing):
        extra.append(StepSeed())  # random numbers that a resumed run draws alike
    if not any(isinstance(c, LossCurves) for c in existing):
        extra.append(LossCurves())
    return extra


def archive_previous_run(root: Path) -> None:
    """A fresh ``fit`` into a used run folder first moves the old one to ``<root>-<time>``, so no
    earlier checkpoint, figure or metric is overwritten (resuming with ``--ckpt_path`` appends)."""
    launcher_process = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get(
        "NODE_RANK", "0"
    ) in ("0", "")
    if not launcher_process or not root.is_dir() or not any(root.iterdir()):
        return
    stamp = datetime.fromtimestamp(root.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
    target = root.with_name(f"{root.name}-{stamp}")
    suffix = 1
    while target.exists():
        target = root.with_name(f"{root.name}-{stamp}-{suffix}")
        suffix += 1
    root.rename(target)
    rank_zero_info(f"previous run in {root} moved to {target}")


def import_object(path: str) -> Any:
    """The object named by a dotted import path, or a bare name exported by one of our packages."""
    module, _, name = path.rpartition(".")
    if module:
        return getattr(importlib.import_module(module), name)
    for package in (ar_models, vae_models):
        if hasattr(package, name):
            return getattr(package, name)
    raise CheckpointError(f"unknown model class {path}")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or saved by another model class."""


def checkpoint_model_check(ckpt_path: str, model_class_path: str) -> None:
    """Stop before Lightning does anything with a checkpoint of another model class.

    The checkpoint's class is its ``_class_path`` hyper-parameter (checkpoints written by this CLI);
    otherwise its hyper-parameter names must all be constructor arguments of the configured class.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {ckpt_path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as error:  # truncated, not a torch file, ...
        raise CheckpointError(f"checkpoint {ckpt_path} cannot be read ({error})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"checkpoint {ckpt_path} has no state_dict: not a Lightning checkpoint"
        )
    wanted = import_object(model_class_path)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    saved_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if saved_path is not None:
        saved = import_object(saved_path)
        if saved is not wanted:
            raise CheckpointError(
                f"checkpoint {ckpt_path} holds a {saved.__name__} ({saved_path}), "
                f"but the config's model is {wanted.__name__} ({model_class_path})"
            )
        return
    accepted = set(inspect.signature(wanted.__init__).parameters)
    unknown = sorted(set(hparams) - accepted)
    if unknown:
        raise CheckpointError(
            f"checkpoint {ckpt_path} was saved by another model class: its hyper-parameters "
            f"{unknown} are not arguments of the config's model {wanted.__name__} "
            f"({model_class_path})"
        )


class DeepulCLI(LightningCLI):
    """LightningCLI in subclass mode, with our run folder, loggers, callbacks and results.json."""

    def __init__(self, args: Any = None, **kwargs: Any) -> None:
        super().__init__(
            DensityModel,
            pl.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            args=args,
            **kwargs,
        )

    def _parse_ckpt_path(self) -> None:
        config = self._subconfig() if self.config.get("subcommand") else None
        ckpt_path = config.get("ckpt_path") if config is not None else None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc", "registry"):
            checkpoint_model_check(ckpt_path, config["model"]["class_path"])
        super()._parse_ckpt_path()

    def _subconfig(self) -> Any:
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def run_name(self) -> str:
        """The stem of the last ``--config`` file, or ``default``."""
        configs = self._subconfig().get("config") or []
        return Path(str(configs[-1])).stem if configs else "default"

    def before_instantiate_classes(self) -> None:
        config = self._subconfig()
        trainer = config["trainer"]
        if not trainer.get("default_root_dir"):
            trainer["default_root_dir"] = str(Path(RUNS_DIR) / self.run_name())
        if self.subcommand == "fit" and not config.get("ckpt_path"):
            archive_previous_run(Path(trainer["default_root_dir"]))

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        config = self._get(self.config_init, "trainer", default={})
        root = config["default_root_dir"]
        if config.get("logger") in (None, True):
            kwargs["logger"] = default_loggers(root, self.run_name())
        existing = config.get("callbacks") or []
        existing = list(existing) if isinstance(existing, list) else [existing]
        kwargs["callbacks"] = existing + default_callbacks(existing)
        return super().instantiate_trainer(**kwargs)

    def write_results(self, results: list[dict[str, float]], checkpoint: str | None) -> None:
        if not self.trainer.is_global_zero:
            return
        metrics = {k: v for result in results for k, v in result.items()}
        payload: dict[str, Any] = {**metrics, "checkpoint": checkpoint}
        path = Path(self.trainer.default_root_dir) / "results.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2) + "\n")
        rank_zero_info(f"results: {path}")

    def after_fit(self) -> None:
        """Test the best checkpoint (the last weights where there is none); write results.json."""
        if self.trainer.fast_dev_run or self.trainer.interrupted:
            return
        best = (
            self.trainer.checkpoint_callback.best_model_path
            if self.trainer.checkpoint_callback
            else ""
        )
        ckpt_path = best or None
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)
        self.write_results(results, ckpt_path)

    def after_test(self) -> None:
        ckpt_path = self._get(self.config_init, "ckpt_path")
        metrics = {
            k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("test/")
        }
        self.write_results([metrics], ckpt_path)


USER_ERRORS = (DataError, ModelConfigError, CheckpointError)


def user_error(error: BaseException) -> BaseException | None:
    """Our own bad-input error behind ``error`` (jsonargparse wraps the ones raised in __init__)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, USER_ERRORS):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def main(args: Any = None) -> None:
    """Entry point; bad data or hyper-parameters end with one line on stderr and exit status 2."""
    keep_freed_memory()  # faster CPU training: large freed tensors stay in the heap
    try:
        DeepulCLI(args=args)
    except Exception as error:
        cause = user_error(error)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
