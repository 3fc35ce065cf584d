"""What the command line attaches to every run, and the start-up messages it keeps quiet.

``fit`` adds to a config's callbacks, unless it lists one of the kind: best/last checkpoints on
``val/bpd``, :class:`~callbacks.stop_checkpoint.StopCheckpoint`,
:class:`~callbacks.timed_checkpoint.TimedCheckpoint`, :class:`~callbacks.step_seed.StepSeed`,
:class:`~callbacks.loss_curves.LossCurves` and
:class:`~callbacks.csv_logger.TrimMetricsOnResume`; and, without ``trainer.logger``, the loggers
``metrics.csv`` and W&B. An evaluation logs to W&B only (:mod:`callbacks.wandb_run`).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import Logger

from callbacks.csv_logger import MetricsCSVLogger, TrimMetricsOnResume
from callbacks.loss_curves import LossCurves
from callbacks.step_seed import StepSeed
from callbacks.stop_checkpoint import StopCheckpoint
from callbacks.timed_checkpoint import TimedCheckpoint
from callbacks.wandb_run import evaluation_wandb_logger, wandb_logger
from model_checkpoints import run_folder

#: Lightning's start-up tips to install its cloud packages
TIPS = ("litlogger", "litmodels")


def default_callbacks(existing: list[Callback]) -> list[Callback]:
    """Best/last checkpoints on ``val/bpd``, a checkpoint at any early stop and every 10 minutes,
    per-step seeds, loss curves and the trimming of ``metrics.csv`` on resume, unless
    ``existing`` already has them."""
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
    # TimedCheckpoint: last.ckpt every 10 minutes (a kill loses at most that); StepSeed: random
    # numbers that a resumed run draws alike.
    for kind in (StopCheckpoint, TimedCheckpoint, StepSeed, LossCurves, TrimMetricsOnResume):
        if not any(isinstance(c, kind) for c in existing):
            extra.append(kind())
    return extra


def default_loggers(
    root: str, run_name: str, resume: bool, class_path: str | None = None
) -> list[Logger]:
    """``metrics.csv`` and ``hparams.yaml`` (with the model's ``class_path``), and W&B
    (``<root>/wandb``) unless W&B is disabled."""
    loggers: list[Logger] = [MetricsCSVLogger(root, class_path=class_path)]
    wandb = wandb_logger(root, run_name, resume)
    return loggers if wandb is None else [*loggers, wandb]


def evaluation_loggers(run_root: Path, subcommand: str) -> list[Logger] | bool:
    """The loggers of an evaluation: the W&B run of its fit (or a new one), else none."""
    wandb = evaluation_wandb_logger(run_root, subcommand)
    return False if wandb is None else [wandb]


def not_a_tip(record: logging.LogRecord) -> bool:
    """A logging filter: False for Lightning's start-up tips to install litlogger or litmodels."""
    message = record.getMessage()
    return not any(tip in message for tip in TIPS)


def quiet_startup() -> None:
    """Silence messages that users cannot act on: Lightning's tips to install litlogger and
    litmodels, and torch's deprecation warning about a ``LeafSpec`` use inside Lightning."""
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )
    log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not_a_tip not in log.filters:
        log.addFilter(not_a_tip)


def quiet_short_run() -> None:
    """A fit shorter than one epoch has no ``val/bpd`` when it stops: the best checkpoint waits
    for a validation, and the fit tests the last checkpoint instead (say nothing about it)."""
    warnings.filterwarnings(
        "ignore", message=r"`ModelCheckpoint\(monitor='val/bpd'\)` could not find the monitored"
    )


def trainer_additions(subcommand: str, config: Any, run_name: str, model: Any) -> dict[str, Any]:
    """What the CLI adds to the Trainer's arguments for a subcommand's (instantiated) ``config``:
    for ``fit`` the config's ``prior_fit`` callback, the default callbacks and loggers
    (:func:`default_callbacks`, :func:`default_loggers`); for an evaluation of
    ``config.ckpt_path`` its W&B logger (:func:`evaluation_loggers`). Sets the warning filters of
    each."""
    ckpt_path, prior_fit = config.get("ckpt_path"), config.get("prior_fit")
    config = config.get("trainer") or {}
    added: dict[str, Any] = {}
    existing = config.get("callbacks") or []
    existing = list(existing) if isinstance(existing, list) else [existing]
    existing += [prior_fit] if prior_fit is not None else []
    default_logger = config.get("logger") in (None, True)
    if subcommand == "fit":
        if default_logger:
            class_path = getattr(model, "hparams", {}).get("_class_path")
            root, resume = config["default_root_dir"], bool(ckpt_path)
            added["logger"] = default_loggers(root, run_name, resume, class_path)
        added["callbacks"] = existing + default_callbacks(existing)
        quiet_short_run()
        if ckpt_path:  # a resumed run writes into its own checkpoints folder: nothing to do
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* is not empty")
    else:
        if default_logger:
            added["logger"] = evaluation_loggers(run_folder(ckpt_path), subcommand)
        # evaluating needs the weights only, not the states of the fit's callbacks
        warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`")
    return added
