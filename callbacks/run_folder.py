"""The folder each subcommand writes into, and the files it leaves there.

* ``fit`` writes into ``trainer.default_root_dir``, by default ``runs/<stem of the last --config>``;
  a fresh fit first moves a used folder aside to ``<folder>-<date>-<time>`` (once its config and
  data have loaded), a resumed one continues in place.
* ``test``, ``validate`` and ``predict`` write into ``<run folder>/eval/<checkpoint>-<subcommand>``
  (``...-predict-seed<k>``); an earlier evaluation in that folder is moved aside the same way.
* Each writes its resolved ``config.yaml`` (:class:`RunConfig`, which also gives it to W&B), and
  ``fit``, ``test`` and ``validate`` their metrics and checkpoint to ``results.json``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from pytorch_lightning.cli import SaveConfigCallback
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_info

from ar_models.errors import UsageError
from callbacks.argument_names import import_object
from callbacks.config_names import EVAL_SUBCOMMANDS, RUNS_DIR
from callbacks.loss_curves import checkpoint_step
from callbacks.wandb_run import RunWandbLogger
from model_checkpoints import (
    LIGHTNING_CKPT_NAMES,
    checkpoint_model_check,
    resolve_checkpoint,
    run_folder,
)


def eval_folder(ckpt_path: Path, subcommand: str, seed: int | None) -> Path:
    """Where an evaluation of ``ckpt_path`` writes: ``<run folder>/eval/<checkpoint>-<subcommand>``
    (``-seed<k>`` added for ``predict``)."""
    name = f"{ckpt_path.stem}-{subcommand}" + (f"-seed{seed}" if subcommand == "predict" else "")
    return run_folder(ckpt_path) / "eval" / name


def move_aside(folder: Path, what: str = "previous run") -> Path | None:
    """Move a used folder to ``<folder>-<date>-<time>`` (its last change), so that nothing in it is
    overwritten; says so in one line and returns where it went."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    stamp = datetime.fromtimestamp(folder.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
    target = folder.with_name(f"{folder.name}-{stamp}")
    suffix = 1
    while target.exists():
        target = folder.with_name(f"{folder.name}-{stamp}-{suffix}")
        suffix += 1
    folder.rename(target)
    rank_zero_info(f"{what} in {folder} moved to {target}")
    return target


def archive_previous_run(root: Path) -> Path | None:
    """Move a used run folder aside before a fresh fit (:func:`move_aside`)."""
    return move_aside(root, "previous run")


def launcher_process() -> bool:
    """True in the process the user started (not in a DDP worker that Lightning launched)."""
    local_rank = os.environ.get("LOCAL_RANK", "0")
    node_rank = os.environ.get("NODE_RANK", "0") or "0"
    return local_rank == "0" and node_rank == "0"


def run_name(config: Any) -> str:
    """The stem of the last ``--config`` file of a parsed CLI ``config``, or ``default``."""
    subcommand = config.get("subcommand")
    configs = (config[subcommand] if subcommand else config).get("config") or []
    return Path(str(configs[-1])).stem if configs else "default"


def settle_folders(config: Any, subcommand: str, run_name: str) -> None:
    """Settle a parsed subcommand config before anything loads: ``trainer.default_root_dir``
    defaults to ``runs/<run_name>``; an evaluation's checkpoint (``best``/``last`` of that folder,
    or a file) must exist and hold the config's model class, and the evaluation writes into its
    own folder under the checkpoint's run folder; ``predict`` seeds with its ``--seed``."""
    trainer = config["trainer"]
    root = Path(trainer.get("default_root_dir") or Path(RUNS_DIR) / run_name)
    trainer["default_root_dir"] = str(root)
    ckpt_path = config.get("ckpt_path")
    if subcommand in EVAL_SUBCOMMANDS:
        if not ckpt_path:
            raise UsageError(
                f"{subcommand} needs --ckpt_path: a checkpoint file, or best/last of the run "
                f"folder ({root})"
            )
        ckpt_path = resolve_checkpoint(ckpt_path, root, subcommand)
        config["ckpt_path"] = str(ckpt_path)
        trainer["default_root_dir"] = str(eval_folder(ckpt_path, subcommand, config.get("seed")))
    elif ckpt_path == "last" and (root / "checkpoints" / "last.ckpt").is_file():
        ckpt_path = root / "checkpoints" / "last.ckpt"  # checked here, resolved by Lightning
    if subcommand == "predict":
        config["seed_everything"] = config.get("seed", 0)  # the seed printed is the one used
    if ckpt_path and str(ckpt_path) not in LIGHTNING_CKPT_NAMES:
        model = config.get("model")
        if model is None or not model.get("class_path"):
            raise UsageError(f"{subcommand} needs a model: give --config or --model")
        class_path = model["class_path"]
        checkpoint_model_check(ckpt_path, import_object(class_path), class_path)


def write_results(
    trainer: pl.Trainer, path: Path, metrics: dict[str, float], checkpoint: str
) -> None:
    """``{metric: value, ..., "checkpoint": checkpoint}`` as JSON at ``path`` (rank zero)."""
    if not trainer.is_global_zero:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**metrics, "checkpoint": checkpoint}, indent=2) + "\n")
    rank_zero_info(f"results: {path}")


def checkpoint_to_test(trainer: pl.Trainer) -> tuple[str | None, str]:
    """What a fit tests: ``(ckpt_path for trainer.test, what results.json records)``. The best
    checkpoint; without one (no validation ran: a run shorter than an epoch) the last checkpoint
    when it holds the final step, else the final weights in memory."""
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") or ""
    if best:
        return best, best
    last = getattr(callback, "last_model_path", "") or ""
    if last and checkpoint_step(last, default=-1) == trainer.global_step:
        rank_zero_info(f"no validation ran, so there is no best checkpoint: testing {last}")
        return last, last
    return None, "the final weights (no validation ran and no checkpoint holds them)"


class RunConfig(SaveConfigCallback):
    """Writes the resolved config to ``config.yaml`` and gives it to W&B as the run's config.

    The file goes into ``trainer.default_root_dir`` (the folder the subcommand writes into), not
    into the first logger's folder: an evaluation's W&B logger keeps the fit's run folder. Give
    it ``save_to_log_dir=False`` (Lightning's own writing is replaced by :meth:`save_config`).
    """

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Write ``config.yaml`` (rank zero). The config of a fit (and of an evaluation logged
        to a W&B run of its own) goes to W&B; an evaluation logged into its fit's W&B run leaves
        that run's config as it is."""
        folder = Path(trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = str(folder / self.config_filename)
        self.parser.save(
            self.config, path, skip_none=False, overwrite=True, multifile=self.multifile
        )
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not wandb_loggers:
            return
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in wandb_loggers:
            own_run = not isinstance(logger, RunWandbLogger) or logger.keeps_id
            if own_run or not logger.continues_run:
                logger.log_hyperparams(config)
            if isinstance(logger, RunWandbLogger) and logger.keeps_id:
                logger.remember_id()


def prepare_fresh_fit(trainer: pl.Trainer, datamodule: pl.LightningDataModule | None) -> None:
    """Before a fresh fit: load the data (``prepare_data``, ``setup("fit")``), so that bad data
    stops it before the earlier run in its folder is moved aside (:func:`archive_previous_run`);
    Lightning's own ``setup`` call then finds it loaded. Only in the process the user started."""
    if not launcher_process():
        return
    if datamodule is not None:
        datamodule.prepare_data()
        datamodule.setup("fit")
    archive_previous_run(Path(trainer.default_root_dir))


def evaluate_after_fit(
    trainer: pl.Trainer, model: pl.LightningModule, datamodule: pl.LightningDataModule | None
) -> None:
    """Test what :func:`checkpoint_to_test` names and write ``results.json`` (not after a
    ``fast_dev_run`` or an interrupted fit)."""
    if trainer.fast_dev_run or trainer.interrupted:
        return
    ckpt_path, tested = checkpoint_to_test(trainer)
    results = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: v for result in results for k, v in result.items()}
    write_results(trainer, Path(trainer.default_root_dir) / "results.json", metrics, tested)


def evaluation_results(trainer: pl.Trainer, subcommand: str, ckpt_path: str) -> None:
    """The metrics of a ``test`` (``test/...``) or ``validate`` (``val/...``) and its checkpoint
    into its ``results.json``."""
    if subcommand not in ("test", "validate"):
        return
    prefix = "val/" if subcommand == "validate" else "test/"
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}
    write_results(trainer, Path(trainer.default_root_dir) / "results.json", metrics, ckpt_path)


def set_aside_earlier_evaluation(trainer: pl.Trainer, subcommand: str) -> None:
    """Move an earlier evaluation of the same kind and checkpoint aside (:func:`move_aside`)."""
    if launcher_process():
        move_aside(Path(trainer.default_root_dir), f"earlier {subcommand}")


def save_config_now(trainer: pl.Trainer, model: pl.LightningModule, stage: str) -> None:
    """Write ``config.yaml`` now (for ``predict``, which runs no Lightning loop: elsewhere the
    config callback's ``setup`` does it)."""
    for callback in trainer.callbacks:
        if isinstance(callback, SaveConfigCallback):
            callback.setup(trainer, model, stage=stage)
