"""Read checkpoints written by ``deepul-train`` / ``train.py`` and rebuild their models.

A checkpoint of the CLI records its model's class as the hyper-parameter ``_class_path`` (an
import path such as ``ar_models.Histogram``) beside the constructor arguments, so

    model = load_model("runs/warmup/checkpoints/best-epoch25-step1250.ckpt")

builds the right class with the checkpoint's weights, whatever model it holds (a base class's
``DensityModel.load_from_checkpoint`` cannot: it would build the base class).

A run folder is the folder that holds ``checkpoints/`` (``config.yaml``, ``metrics.csv``, ...).

torch and Lightning are imported on first use, so that the command line can check a checkpoint's
file (:func:`checkpoint_file_problem`) and find its run folder before it imports them.
"""

from __future__ import annotations

import importlib
import inspect
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytorch_lightning as pl
    import torch

#: ``--ckpt_path`` values that Lightning's ``fit`` resolves itself.
LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


def __getattr__(name: str) -> Any:
    """``model_checkpoints.CheckpointError`` (it lives in ``ar_models.errors``, imported late)."""
    if name == "CheckpointError":
        from ar_models.errors import CheckpointError

        return CheckpointError
    raise AttributeError(f"module 'model_checkpoints' has no attribute {name!r}")


def _checkpoint_error(message: str) -> Exception:
    from ar_models.errors import CheckpointError

    return CheckpointError(message)


def checkpoint_file_problem(path: str | Path) -> str | None:
    """What is wrong with the file at ``path`` as a checkpoint, without reading it: missing, or
    incomplete (truncated while being written or copied) or not a PyTorch archive; None if it
    looks complete."""
    path = Path(path)
    if not path.is_file():
        return f"checkpoint {path} does not exist"
    if not zipfile.is_zipfile(path):
        return (
            f"checkpoint {path} is incomplete or not a checkpoint: its {path.stat().st_size} "
            "bytes are not a complete PyTorch archive (the end of the file is missing: was it "
            "truncated, or copied while being written?); expected a .ckpt file saved by Lightning"
        )
    return None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (tensors on the CPU), or a :class:`CheckpointError` saying what is
    wrong: no such file, an incomplete file (truncated while being written or copied), not a
    PyTorch file, or a PyTorch file that is not a Lightning checkpoint."""
    import torch

    path = Path(path)
    problem = checkpoint_file_problem(path)
    if problem is not None:
        raise _checkpoint_error(problem)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged archive member, an unsafe pickle, ...
        raise _checkpoint_error(
            f"checkpoint {path} cannot be loaded ({type(error).__name__}: {error}); expected a "
            ".ckpt file saved by Lightning"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise _checkpoint_error(
            f"checkpoint {path} is a PyTorch file without a state_dict: not a Lightning checkpoint"
        )
    return checkpoint


def import_class(class_path: str) -> type:
    """The class named by a dotted import path (``package.module.Class``)."""
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name) if module_name else None
    except (ImportError, AttributeError):
        cls = None
    if not isinstance(cls, type):
        raise _checkpoint_error(f"cannot import the model class {class_path}")
    return cls


def checkpoint_class(checkpoint: dict[str, Any]) -> type | None:
    """The model class a CLI checkpoint records (``_class_path``), or None for one written without
    the CLI."""
    class_path = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    return import_class(class_path) if class_path else None


def load_model(
    checkpoint_path: str | Path,
    model_class: type[pl.LightningModule] | None = None,
    map_location: str | torch.device = "cpu",
) -> pl.LightningModule:
    """The model saved in ``checkpoint_path``, built as its own class, in eval mode.

    Args:
        checkpoint_path: a ``.ckpt`` file written by the CLI (or by any Lightning Trainer).
        model_class: the class to build for a checkpoint that does not record one (written
            without the CLI); must agree with the recorded class where there is one.
        map_location: device of the returned model's tensors.
    """
    import pytorch_lightning as pl

    checkpoint = read_checkpoint(checkpoint_path)
    recorded = checkpoint_class(checkpoint)
    if recorded is None and model_class is None:
        raise _checkpoint_error(
            f"checkpoint {checkpoint_path} does not record its model class (it was not written by "
            "deepul-train); pass model_class=..."
        )
    if recorded is not None and model_class is not None and not issubclass(recorded, model_class):
        raise _checkpoint_error(
            f"checkpoint {checkpoint_path} holds a {recorded.__name__} "
            f"({recorded.__module__}.{recorded.__qualname__}), not a {model_class.__name__}"
        )
    cls = recorded or model_class
    if not issubclass(cls, pl.LightningModule):
        raise _checkpoint_error(f"{cls.__name__} recorded in {checkpoint_path} is not a model")
    model = cls.load_from_checkpoint(checkpoint_path, map_location=map_location, weights_only=True)
    return model.eval()


def run_folder(checkpoint_path: str | Path) -> Path:
    """The run folder of a checkpoint: the parent of its ``checkpoints/`` folder, or the folder the
    checkpoint lies in when that is not called ``checkpoints``."""
    folder = Path(checkpoint_path).resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder


def checkpoint_model_check(ckpt_path: str | Path, wanted: type, wanted_path: str) -> None:
    """Stop before Lightning does anything with an unreadable checkpoint or one of another model
    class than ``wanted`` (the config's, named ``wanted_path``). The checkpoint's class is its
    ``_class_path`` hyper-parameter (checkpoints written by the CLI); otherwise its
    hyper-parameter names must all be arguments of ``wanted``."""
    checkpoint = read_checkpoint(ckpt_path)
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    saved_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if saved_path is not None:
        saved = import_class(saved_path)
        if saved is not wanted:
            raise _checkpoint_error(
                f"checkpoint {ckpt_path} holds a {saved.__name__} ({saved_path}), "
                f"but the config's model is {wanted.__name__} ({wanted_path})"
            )
        return
    accepted = set(inspect.signature(wanted.__init__).parameters)
    unknown = sorted(set(hparams) - accepted)
    if unknown:
        raise _checkpoint_error(
            f"checkpoint {ckpt_path} was saved by another model class: its hyper-parameters "
            f"{unknown} are not arguments of the config's model {wanted.__name__} ({wanted_path})"
        )


def resolve_checkpoint(name: str, root: Path, subcommand: str) -> Path:
    """The file that ``--ckpt_path`` names for an evaluation: ``last`` and ``best`` are
    ``checkpoints/last.ckpt`` and the single ``checkpoints/best-*.ckpt`` of the run folder
    ``root``; anything else is a file."""
    from ar_models.errors import UsageError

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
