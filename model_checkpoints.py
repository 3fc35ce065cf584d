"""Read checkpoints written by ``deepul-train`` / ``train.py`` and rebuild their models.

A checkpoint of the CLI records its model's class as the hyper-parameter ``_class_path`` (an
import path such as ``ar_models.Histogram``) beside the constructor arguments, so

    model = load_model("runs/warmup/checkpoints/best-epoch25-step1250.ckpt")

builds the right class with the checkpoint's weights, whatever model it holds (a base class's
``DensityModel.load_from_checkpoint`` cannot: it would build the base class).

A run folder is the folder that holds ``checkpoints/`` (``config.yaml``, ``metrics.csv``, ...).
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from ar_models.errors import CheckpointError


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (tensors on the CPU), or a :class:`CheckpointError` saying what is
    wrong: no such file, an incomplete file (truncated while being written or copied), not a
    PyTorch file, or a PyTorch file that is not a Lightning checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    size = path.stat().st_size
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"checkpoint {path} is incomplete or not a checkpoint: its {size} bytes are not a "
            "complete PyTorch archive (the end of the file is missing: was it truncated, or copied "
            "while being written?); expected a .ckpt file saved by Lightning"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged archive member, an unsafe pickle, ...
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded ({type(error).__name__}: {error}); expected a "
            ".ckpt file saved by Lightning"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(
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
        raise CheckpointError(f"cannot import the model class {class_path}")
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
    checkpoint = read_checkpoint(checkpoint_path)
    recorded = checkpoint_class(checkpoint)
    if recorded is None and model_class is None:
        raise CheckpointError(
            f"checkpoint {checkpoint_path} does not record its model class (it was not written by "
            "deepul-train); pass model_class=..."
        )
    if recorded is not None and model_class is not None and not issubclass(recorded, model_class):
        raise CheckpointError(
            f"checkpoint {checkpoint_path} holds a {recorded.__name__} "
            f"({recorded.__module__}.{recorded.__qualname__}), not a {model_class.__name__}"
        )
    cls = recorded or model_class
    if not issubclass(cls, pl.LightningModule):
        raise CheckpointError(f"{cls.__name__} recorded in {checkpoint_path} is not a model")
    model = cls.load_from_checkpoint(checkpoint_path, map_location=map_location, weights_only=True)
    return model.eval()


def run_folder(checkpoint_path: str | Path) -> Path:
    """The run folder of a checkpoint: the parent of its ``checkpoints/`` folder, or the folder the
    checkpoint lies in when that is not called ``checkpoints``."""
    folder = Path(checkpoint_path).resolve().parent
    return folder.parent if folder.name == "checkpoints" else folder
