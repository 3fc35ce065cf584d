"""Train, test, validate or sample any model of this library from YAML configs (LightningCLI).

    deepul-train fit --config hw1/warmup.yaml [--trainer.max_epochs 5 ...]
    deepul-train test --ckpt_path runs/warmup/checkpoints/best-epoch25-step1250.ckpt
    deepul-train predict --ckpt_path runs/warmup/checkpoints/last.ckpt --n 64 --seed 1

(``python train.py ...`` from a checkout is the same command.) ``--config`` takes a file, or a
name relative to the configs shipped with the package (``hw1/warmup.yaml``; ``configs/...`` works
too); several ``--config`` are merged in order. ``--model`` and ``--data`` take any concrete
:class:`ar_models.DensityModel` and LightningDataModule (short names of this library, or import
paths).

``fit`` trains into the run folder ``trainer.default_root_dir`` (default ``runs/<name of the last
config>``), then tests the best checkpoint, and leaves there ``config.yaml``, ``hparams.yaml``,
``checkpoints/``, ``figures/``, ``metrics.csv``, ``results.json`` and ``wandb/``. A fresh fit into
a used folder first moves the earlier run to ``<folder>-<date>-<time>``, once the config and the
data have loaded; ``--ckpt_path last`` resumes in place.

``test``, ``validate`` and ``predict`` take a checkpoint (a file, or ``best``/``last`` of the run
folder) and write into ``<run folder>/eval/<checkpoint>-<subcommand>/`` (``predict``:
``...-predict-seed<k>/``), never over the fit's own files; without ``--config`` they read the run
folder's ``config.yaml``. ``predict`` draws ``--n`` samples (``--seed``; ``--labels`` for
class-conditional models) into ``samples.npy`` and ``samples.png``.

W&B receives the whole resolved config; it runs offline unless credentials are configured,
``WANDB_MODE`` always wins and ``WANDB_MODE=disabled`` attaches no W&B logger at all. A resumed
fit continues the same W&B run (its id is kept in ``<run folder>/wandb/run-id``).
"""

# ruff: noqa: E402  (the library's packages are imported after the shadowing check below)

from __future__ import annotations

import contextlib
import importlib.resources
import inspect
import io
import json
import logging
import os
import signal
import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import Logger, WandbLogger
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch import Tensor

LIBRARY_PACKAGES = ("ar_models", "vae_models", "datamodules", "callbacks", "metrics")


def hidden_library_packages() -> list[str]:
    """The library packages that a module of the same name (a ``callbacks.py`` in the working
    folder, ...) hides: their name and the file Python imported instead."""
    here = Path(__file__).resolve().parent
    hidden = []
    for name in LIBRARY_PACKAGES:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if module is not None and (file is None or Path(file).resolve().parent.parent != here):
            hidden.append(f"{name} ({file or 'a folder without __init__.py'})")
    return hidden


try:
    import ar_models  # noqa: F401  (registers the model classes for --model)
    import callbacks  # noqa: F401  (registers the callbacks for trainer.callbacks)
    import datamodules  # noqa: F401  (registers the data modules for --data)
    import vae_models  # noqa: F401
    from ar_models.allocator import keep_freed_memory
    from ar_models.base import DensityModel
    from ar_models.errors import CheckpointError, UsageError, UserError
    from callbacks.csv_logger import MetricsCSVLogger, TrimMetricsOnResume
    from callbacks.figures import samples_figure
    from callbacks.loss_curves import LossCurves
    from callbacks.step_seed import StepSeed
    from callbacks.stop_checkpoint import StopCheckpoint
    from callbacks.timed_checkpoint import TimedCheckpoint
    from callbacks.wandb_run import RunWandbLogger, finish_wandb, wandb_logger
except ImportError as error:
    hidden = hidden_library_packages()
    if not hidden:
        raise
    raise ImportError(
        f"deepul-lightning's packages are hidden by modules of the same name: {', '.join(hidden)}. "
        "Python imported those instead (the working folder comes first on sys.path); rename them "
        f"or run from another folder ({error})"
    ) from error

from model_checkpoints import import_class, read_checkpoint, run_folder

RUNS_DIR = "runs"
EVAL_SUBCOMMANDS = ("test", "validate", "predict")
#: ``--ckpt_path`` values that Lightning's ``fit`` resolves itself.
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


# --------------------------------------------------------------------------- configs
def shipped_configs() -> Path | None:
    """The folder of the YAML configs shipped with the package (installed as ``deepul_configs``;
    the checkout's ``configs/`` when the package is not installed)."""
    try:
        folder = Path(str(importlib.resources.files("deepul_configs")))
    except ModuleNotFoundError:
        folder = Path(__file__).resolve().parent / "configs"
    return folder if folder.is_dir() else None


def resolve_config(value: str) -> str:
    """A ``--config`` value as given when it is an existing file (or inline YAML), else the shipped
    config of that name (``hw1/warmup.yaml`` or ``configs/hw1/warmup.yaml``)."""
    looks_like_a_file = value.endswith((".yaml", ".yml", ".json")) and "\n" not in value
    if Path(value).exists() or not looks_like_a_file:
        return value
    shipped = shipped_configs()
    if shipped is not None:
        for name in (value, value.removeprefix("configs/")):
            if (shipped / name).is_file():
                return str(shipped / name)
    names = sorted(str(p.relative_to(shipped)) for p in shipped.rglob("*.yaml")) if shipped else []
    raise UsageError(
        f"--config {value}: no such file, neither from the working folder {Path.cwd()} nor among "
        f"the shipped configs ({shipped}): {', '.join(names) or 'none installed'}"
    )


def option_value(args: list[str], option: str) -> str | None:
    """The last value of ``option`` on a command line (``--opt v`` or ``--opt=v``)."""
    value = None
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(f"{option}="):
            value = arg.split("=", 1)[1]
    return value


def prepare_args(args: list[str]) -> list[str]:
    """The command line with every ``--config`` name resolved (:func:`resolve_config`), and for
    ``test``/``validate``/``predict`` without a config the run folder's ``config.yaml``."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-c", "--config") and i + 1 < len(args):
            out += [arg, resolve_config(args[i + 1])]
            i += 2
            continue
        for flag in ("-c=", "--config="):
            if arg.startswith(flag):
                arg = flag + resolve_config(arg[len(flag) :])
        out.append(arg)
        i += 1
    subcommand = next((a for a in out if not a.startswith("-")), None)
    has_config = any(a in ("-c", "--config") or a.startswith(("-c=", "--config=")) for a in out)
    if subcommand in EVAL_SUBCOMMANDS and not has_config:
        config = run_config_of(
            option_value(out, "--ckpt_path"), option_value(out, "--trainer.default_root_dir")
        )
        if config is not None:
            position = out.index(subcommand) + 1
            out[position:position] = ["--config", str(config)]
    return out


def run_config_of(ckpt_path: str | None, root: str | None) -> Path | None:
    """The ``config.yaml`` of the run a checkpoint belongs to (None if there is none)."""
    if ckpt_path in LIGHTNING_CKPT_NAMES:
        folder = Path(root) if root else None
    else:
        folder = run_folder(ckpt_path) if ckpt_path else None
    config = folder / "config.yaml" if folder is not None else None
    return config if config is not None and config.is_file() else None


# --------------------------------------------------------------------------- checkpoints
def run_checkpoint(name: str, root: Path, subcommand: str) -> Path:
    """The file that ``--ckpt_path`` names for an evaluation: ``last`` and ``best`` are
    ``checkpoints/last.ckpt`` and the single ``checkpoints/best-*.ckpt`` of the run folder."""
    folder = root / "checkpoints"
    if name == "last":
        path = folder / "last.ckpt"
    elif name == "best":
        best = sorted(folder.glob("best-*.ckpt"))
        if len(best) > 1:
            raise UsageError(
                f"{subcommand} --ckpt_path best: {folder} holds several best-*.ckpt "
                f"({', '.join(p.name for p in best)}); give the file"
            )
        path = best[0] if best else folder / "best-*.ckpt"
    else:
        return Path(name)
    if not path.is_file():
        raise UsageError(
            f"{subcommand} --ckpt_path {name}: no {path} (the run folder is "
            "--trainer.default_root_dir, by default runs/<config name>)"
        )
    return path


def import_object(path: str) -> Any:
    """The class named by a dotted import path, or a bare name exported by a model package."""
    if "." in path:
        return import_class(path)
    for package in (ar_models, vae_models):
        if hasattr(package, path):
            return getattr(package, path)
    raise CheckpointError(f"unknown model class {path}")


def checkpoint_model_check(ckpt_path: str | Path, model_class_path: str) -> None:
    """Stop before Lightning does anything with an unreadable checkpoint or one of another model
    class. The checkpoint's class is its ``_class_path`` hyper-parameter (checkpoints written by
    this CLI); otherwise its hyper-parameter names must all be arguments of the config's class."""
    checkpoint = read_checkpoint(ckpt_path)
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


def eval_folder(ckpt_path: Path, subcommand: str, seed: int | None) -> Path:
    """Where an evaluation of ``ckpt_path`` writes: ``<run folder>/eval/<checkpoint>-<subcommand>``
    (``-seed<k>`` added for ``predict``)."""
    name = f"{ckpt_path.stem}-{subcommand}" + (f"-seed{seed}" if subcommand == "predict" else "")
    return run_folder(ckpt_path) / "eval" / name


# --------------------------------------------------------------------------- loggers
def default_loggers(root: str, run_name: str, resume: bool) -> list[Logger]:
    """``metrics.csv`` (always) and W&B (``<root>/wandb``) unless W&B is disabled."""
    loggers: list[Logger] = [MetricsCSVLogger(root)]
    wandb = wandb_logger(root, run_name, resume)
    return loggers if wandb is None else [*loggers, wandb]


class RunConfig(SaveConfigCallback):
    """Writes the resolved config to ``config.yaml`` of the folder a subcommand writes into, and
    gives the same config (model, data, trainer with its callbacks, seed, ...) to W&B as the run's
    config."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not wandb_loggers:
            return
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in wandb_loggers:
            logger.log_hyperparams(config)
            if isinstance(logger, RunWandbLogger):
                logger.remember_id()


# --------------------------------------------------------------------------- run folder
def archive_previous_run(root: Path) -> Path | None:
    """Move a used run folder to ``<root>-<date>-<time>`` (its last change), so no earlier
    checkpoint, figure or metric is overwritten; returns where it went."""
    if not root.is_dir() or not any(root.iterdir()):
        return None
    stamp = datetime.fromtimestamp(root.stat().st_mtime).strftime("%Y%m%d-%H%M%S")
    target = root.with_name(f"{root.name}-{stamp}")
    suffix = 1
    while target.exists():
        target = root.with_name(f"{root.name}-{stamp}-{suffix}")
        suffix += 1
    root.rename(target)
    rank_zero_info(f"previous run in {root} moved to {target}")
    return target


def launcher_process() -> bool:
    """True in the process the user started (not in a DDP worker that Lightning launched)."""
    local_rank = os.environ.get("LOCAL_RANK", "0")
    node_rank = os.environ.get("NODE_RANK", "0") or "0"
    return local_rank == "0" and node_rank == "0"


def default_callbacks(existing: list[Callback]) -> list[Callback]:
    """Best/last checkpoints on ``val/bpd``, a checkpoint at any early stop and every 10 minutes,
    per-step seeds, loss curves and the trimming of ``metrics.csv`` on resume, unless the config
    already has them."""
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


# --------------------------------------------------------------------------- predict
def sample_labels(model: pl.LightningModule, n: int, labels: int | list[int] | None) -> Tensor:
    """The label of each of ``n`` samples of a class-conditional model (``n_classes`` > 0):
    classes 0, 1, ..., n_classes-1 in turn by default, else ``labels`` (one class, or a list
    repeated over the samples)."""
    n_classes = int(getattr(model, "n_classes", 0) or 0)
    if isinstance(labels, int):
        labels = [labels]
    chosen = list(range(n_classes)) if labels is None else list(labels)
    if not chosen or any(not 0 <= y < n_classes for y in chosen):
        raise UsageError(
            f"--labels {labels}: {type(model).__name__} has {n_classes} classes; "
            f"expected labels in 0..{n_classes - 1}"
        )
    return torch.tensor(chosen).repeat(-(-n // len(chosen)))[:n]


def draw_samples(
    model: pl.LightningModule, n: int, labels: Tensor | None, batch_size: int
) -> Tensor:
    """``n`` samples of ``model`` (on the CPU), drawn ``batch_size`` at a time in eval mode
    without gradients; ``model.sample(m, y=labels)`` for a class-conditional model."""
    parts = []
    model.eval()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            if labels is None:
                part = model.sample(m)
            else:
                part = model.sample(m, y=labels[start : start + m].to(model.device))
            parts.append(part.cpu())
    return torch.cat(parts)


class DeepulTrainer(pl.Trainer):
    """Lightning's Trainer, whose ``predict`` draws samples from a generative model (the CLI's
    ``predict`` subcommand takes its arguments from this signature)."""

    def predict(  # type: ignore[override]
        self,
        model: pl.LightningModule | None = None,
        datamodule: pl.LightningDataModule | None = None,
        ckpt_path: str | None = None,
        n: int = 64,
        seed: int = 0,
        labels: int | list[int] | None = None,
        batch_size: int | None = None,
        weights_only: bool | None = None,
    ) -> Tensor:
        """Draw n samples from a checkpoint and save them (samples.npy, samples.png).

        Args:
            model: the model (its weights are replaced by the checkpoint's).
            datamodule: unused (the data are not needed to sample).
            ckpt_path: the checkpoint to sample from.
            n: number of samples.
            seed: seed of the draw (the same seed gives the same samples).
            labels: for a class-conditional model, the class of the samples: one class, or a list
                repeated over the samples (default: every class in turn).
            batch_size: samples drawn at once (default: all n).
            weights_only: unused (checkpoints are read with ``weights_only=True``).
        """
        if model is None or ckpt_path is None:
            raise UsageError("predict needs a model and --ckpt_path")
        if n < 1 or (batch_size is not None and batch_size < 1):
            raise UsageError(f"--n and --batch_size must be >= 1, got {n} and {batch_size}")
        conditional = int(getattr(model, "n_classes", 0) or 0) > 0
        if labels is not None and not conditional:
            raise UsageError(
                f"--labels: {type(model).__name__} is not class-conditional (n_classes = 0)"
            )
        checkpoint = read_checkpoint(ckpt_path)
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(checkpoint["state_dict"], strict=model.strict_loading)
        model.to(self.strategy.root_device)
        y = sample_labels(model, n, labels) if conditional else None
        pl.seed_everything(seed, verbose=False)
        samples = draw_samples(model, n, y, batch_size or n)
        self.save_samples(model, Path(ckpt_path), samples, y, seed)
        return samples

    def save_samples(
        self,
        model: pl.LightningModule,
        ckpt_path: Path,
        samples: Tensor,
        labels: Tensor | None,
        seed: int,
    ) -> None:
        """``samples.npy`` (and ``labels.npy``) and the picture ``samples.png`` in
        ``default_root_dir`` (rank zero)."""
        if not self.is_global_zero:
            return
        folder = Path(self.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "samples.npy", samples.numpy())
        if labels is not None:
            np.save(folder / "labels.npy", labels.numpy())
        n_classes = int(getattr(model, "n_classes", 0) or 0)
        fig = samples_figure(
            samples.numpy(),
            f"{type(model).__name__}: {len(samples):,} samples of {ckpt_path.name} (seed {seed})",
            n_levels=getattr(model, "n_categories", None),
            labels=None if labels is None else labels.numpy(),
            ncols=n_classes or None,  # a class-conditional model: one column per class
        )
        rank_zero_info(
            f"samples: {folder / 'samples.npy'} ({len(samples)} samples of shape "
            f"{tuple(samples.shape[1:])}, {samples.dtype})"
        )
        if fig is None:
            rank_zero_info(f"no picture for samples of shape {tuple(samples.shape)}")
            return
        fig.savefig(folder / "samples.png", dpi=100, bbox_inches="tight")
        rank_zero_info(f"picture: {folder / 'samples.png'}")


# --------------------------------------------------------------------------- the CLI
class DeepulCLI(LightningCLI):
    """LightningCLI in subclass mode, with our run folders, loggers, callbacks and results."""

    def __init__(self, args: Any = None, **kwargs: Any) -> None:
        if args is None:
            sys.argv[1:] = prepare_args(sys.argv[1:])
        elif isinstance(args, list):
            args = prepare_args([str(a) for a in args])
        super().__init__(
            DensityModel,
            pl.LightningDataModule,
            save_config_callback=RunConfig,
            save_config_kwargs={"overwrite": True},
            trainer_class=DeepulTrainer,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            args=args,
            **kwargs,
        )

    def _subconfig(self) -> Any:
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def run_name(self) -> str:
        """The stem of the last ``--config`` file, or ``default``."""
        configs = self._subconfig().get("config") or []
        return Path(str(configs[-1])).stem if configs else "default"

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse, then settle the run folder and check the checkpoint before anything loads it:
        ``trainer.default_root_dir`` defaults to ``runs/<config name>``; an evaluation's
        checkpoint (``best``/``last`` of that folder, or a file) must exist and be readable, and
        the evaluation writes into its own folder under the checkpoint's run folder."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        config = self.config[subcommand]
        trainer = config["trainer"]
        root = Path(trainer.get("default_root_dir") or Path(RUNS_DIR) / self.run_name())
        trainer["default_root_dir"] = str(root)
        ckpt_path = config.get("ckpt_path")
        if subcommand in EVAL_SUBCOMMANDS:
            if not ckpt_path:
                raise UsageError(
                    f"{subcommand} needs --ckpt_path: a checkpoint file, or best/last of the run "
                    f"folder ({root})"
                )
            ckpt_path = run_checkpoint(ckpt_path, root, subcommand)
            config["ckpt_path"] = str(ckpt_path)
            trainer["default_root_dir"] = str(
                eval_folder(ckpt_path, subcommand, config.get("seed"))
            )
        elif ckpt_path == "last" and (root / "checkpoints" / "last.ckpt").is_file():
            ckpt_path = root / "checkpoints" / "last.ckpt"  # checked here, resolved by Lightning
        if ckpt_path and str(ckpt_path) not in LIGHTNING_CKPT_NAMES:
            model = config.get("model")
            if model is None or not model.get("class_path"):
                raise UsageError(f"{subcommand} needs a model: give --config or --model")
            checkpoint_model_check(ckpt_path, model["class_path"])

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        config = self._get(self.config_init, "trainer", default={})
        root = config["default_root_dir"]
        existing = config.get("callbacks") or []
        existing = list(existing) if isinstance(existing, list) else [existing]
        if self.subcommand == "fit":
            resume = bool(self._get(self.config_init, "ckpt_path"))
            if config.get("logger") in (None, True):
                kwargs["logger"] = default_loggers(root, self.run_name(), resume)
            kwargs["callbacks"] = existing + default_callbacks(existing)
        else:
            if config.get("logger") in (None, True):
                kwargs["logger"] = False  # an evaluation's results go to its folder, not to W&B
            # evaluating needs the weights only, not the states of the fit's callbacks
            warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`")
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        """A fresh fit loads its data first (``prepare_data``, ``setup("fit")``), so that bad
        data stops it before the earlier run in its folder is moved aside
        (:func:`archive_previous_run`); Lightning's own ``setup`` call then finds it loaded."""
        if self._get(self.config_init, "ckpt_path"):
            # a resumed run writes into its own checkpoints folder: nothing for the user to do
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* is not empty")
            return
        if not launcher_process():
            return
        if self.datamodule is not None:
            self.datamodule.prepare_data()
            self.datamodule.setup("fit")
        archive_previous_run(Path(self.trainer.default_root_dir))

    def write_results(self, path: Path, metrics: dict[str, float], ckpt_path: Any) -> None:
        """``{metric: value, ..., "checkpoint": ckpt_path}`` as JSON at ``path`` (rank zero)."""
        if not self.trainer.is_global_zero:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {**metrics, "checkpoint": None if ckpt_path is None else str(ckpt_path)}
        path.write_text(json.dumps(payload, indent=2) + "\n")
        rank_zero_info(f"results: {path}")

    def after_fit(self) -> None:
        """Test the best checkpoint (the last weights where there is none) into results.json."""
        if self.trainer.fast_dev_run or self.trainer.interrupted:
            return
        callback = self.trainer.checkpoint_callback
        ckpt_path = (callback.best_model_path if callback else "") or None
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path)
        metrics = {k: v for result in results for k, v in result.items()}
        self.write_results(Path(self.trainer.default_root_dir) / "results.json", metrics, ckpt_path)

    def evaluation_results(self, stage: str) -> None:
        prefix = "val/" if stage == "validate" else "test/"
        metrics = {
            k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith(prefix)
        }
        path = Path(self.trainer.default_root_dir) / "results.json"
        self.write_results(path, metrics, self._get(self.config_init, "ckpt_path"))

    def after_test(self) -> None:
        self.evaluation_results("test")

    def after_validate(self) -> None:
        self.evaluation_results("validate")

    def before_predict(self) -> None:
        """``predict`` runs no Lightning loop: save its config here, as setup does elsewhere."""
        for callback in self.trainer.callbacks:
            if isinstance(callback, SaveConfigCallback):
                callback.setup(self.trainer, self.model, stage="predict")


# --------------------------------------------------------------------------- main
def not_the_litlogger_tip(record: logging.LogRecord) -> bool:
    """A logging filter: False for Lightning's start-up tip to install litlogger."""
    return "litlogger" not in record.getMessage()


def quiet_startup() -> None:
    """Silence start-up messages that users cannot act on: Lightning's tip to install litlogger
    and torch's deprecation warning about a ``LeafSpec`` use inside Lightning."""
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )
    rank_zero_log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not_the_litlogger_tip not in rank_zero_log.filters:
        rank_zero_log.addFilter(not_the_litlogger_tip)


def user_error(error: BaseException) -> BaseException | None:
    """Our own bad-input error behind ``error`` (jsonargparse wraps the ones raised in __init__)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, UserError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def resolved_config(*configs: str, subcommand: str = "fit") -> dict[str, Any]:
    """The config that ``train.py <subcommand> --config A [--config B ...]`` would run, as a dict:
    shipped names resolved, nested ``config:`` bases loaded, defaults filled in (what
    ``--print_config`` prints). Nothing is instantiated."""
    args = [subcommand, *(arg for config in configs for arg in ("--config", config))]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.suppress(SystemExit):
        with warnings.catch_warnings():  # the caller's own sys.argv (a notebook kernel's) is moot
            warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
            DeepulCLI(args=[*args, "--print_config"])
    return yaml.safe_load(printed.getvalue())


def main(args: Any = None) -> None:
    """Entry point; bad input ends with one line on stderr and exit status 2."""
    keep_freed_memory()  # faster CPU training: large freed tensors stay in the heap
    quiet_startup()
    try:
        DeepulCLI(args=args)
    except SIGTERMException:  # Lightning's SystemExit with status 0: a stop is not a finish
        finish_wandb(exit_code=1)
        raise SystemExit(128 + signal.SIGTERM) from None
    except Exception as error:
        finish_wandb(exit_code=1)
        cause = user_error(error)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None
    finish_wandb(exit_code=0)


if __name__ == "__main__":
    main()
