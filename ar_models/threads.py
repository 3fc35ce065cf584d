"""The number of intra-op threads torch uses while a model of this library trains or evaluates.

Models without convolutions (the histogram, the 2-D AR-MLP and MADE, the 2-D VAEs: small matrix
products per step) run their steps on CPU faster with one intra-op thread than with torch's
default (one per core): waking and joining a pool of OpenMP threads for every small product costs
more than the product, and much more when other processes keep the cores busy. Convolutional
models (PixelCNNs, the conv VAEs) have enough work per operation to gain from more threads. The
measurements behind the rule are in ``benchmarks/threads.py`` (one table, both settings side by
side).

:func:`choose_threads` applies the rule when a model's ``setup`` runs (every ``fit``, ``validate``,
``test`` and ``predict``, for ``train.py`` and for library users alike) and :func:`restore_threads`
puts the previous count back at ``teardown``. Nothing changes when

* the model runs on an accelerator (``trainer.strategy.root_device`` is not the CPU),
* ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set, or
* the thread count differs from torch's default, i.e. someone called ``torch.set_num_threads``
  (the default is the count torch had when this module was first imported: call
  ``torch.set_num_threads`` after importing this library, or set ``OMP_NUM_THREADS``, to choose).
"""

from __future__ import annotations

import os

import torch
from torch import nn

#: Environment variables through which a user sets the intra-op thread count.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Largest model without convolutions that is trained with one thread.
MAX_ONE_THREAD_PARAMETERS = 10_000_000

_TORCH_DEFAULT = torch.get_num_threads()
_chosen: int | None = None  # the count this module set last, not a user's choice


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


CONVOLUTIONS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def model_kind(model: nn.Module) -> str:
    """``"conv"`` if ``model`` contains a convolution (or a subclass of one), else ``"mlp"``."""
    convolutional = any(isinstance(m, CONVOLUTIONS) for m in model.modules())
    return "conv" if convolutional else "mlp"


def prefers_one_thread(model: nn.Module) -> bool:
    """True for a model without convolutions and with at most
    :data:`MAX_ONE_THREAD_PARAMETERS` parameters (module docstring)."""
    return model_kind(model) == "mlp" and n_parameters(model) <= MAX_ONE_THREAD_PARAMETERS


def user_chose_threads() -> bool:
    """True when the thread count is the user's: an environment variable of
    :data:`THREAD_VARIABLES` is set, or the count is neither torch's default nor this module's."""
    if any(os.environ.get(name) for name in THREAD_VARIABLES):
        return True
    return torch.get_num_threads() not in (_TORCH_DEFAULT, _chosen)


def choose_threads(model: nn.Module, device: torch.device) -> int | None:
    """Set the intra-op thread count for ``model`` training on ``device`` (module docstring).
    Returns the previous count when it changed it (for :func:`restore_threads`), else None."""
    global _chosen
    if device.type != "cpu" or user_chose_threads():
        return None
    wanted = 1 if prefers_one_thread(model) else _TORCH_DEFAULT
    previous = torch.get_num_threads()
    if wanted == previous:
        return None
    torch.set_num_threads(wanted)
    _chosen = wanted
    return previous


def restore_threads(previous: int | None) -> None:
    """Undo :func:`choose_threads`, unless someone changed the count since."""
    global _chosen
    if previous is not None and torch.get_num_threads() == _chosen:
        torch.set_num_threads(previous)
        _chosen = None
