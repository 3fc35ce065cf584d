"""The shared base of every density model: loss, bits/dim logging and the sampling contract.

A model implements

* ``nll(x) -> Tensor[B]``: negative log-likelihood of each example, in **nats**
  (for a latent-variable model: the negative ELBO, an upper bound on the NLL);
* ``n_dims``: dimensions per example, so that ``bits/dim = nll / (n_dims * ln 2)``;
* ``sample(n) -> Tensor``: ``n`` samples shaped and typed like a batch ``x``, on the model's device.

Batches are ``x`` or ``(x, y)``. Models that ignore labels (``n_classes = 0``, every model unless it
says otherwise) take either form and never read ``y``. A class-conditional model sets
``n_classes`` > 0 and implements ``nll(x, y)`` for labels ``y: LongTensor[B]`` in
{0..n_classes-1}; the shared steps pass it ``y`` and stop with :class:`ModelConfigError` when a
batch has none (:meth:`DensityModel.check_labels` names what is wrong).

Models with more than one loss term (VAEs) override :meth:`DensityModel.loss_terms` and list the
extra term names in ``extra_terms``; each is logged as ``<stage>/<term>_bpd`` beside
``<stage>/bpd``.

The optimiser minimises the mean NLL per dimension in nats; everything logged is in bits/dim.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import RunningStage, TrainerStatus
from torch import Tensor, nn
from torchmetrics import MeanMetric

from ar_models.errors import ModelConfigError, NonFiniteLossError
from ar_models.threads import choose_threads, restore_threads

LN2 = math.log(2.0)
STAGES = ("train", "val", "test")


def check_categorical(
    x: Tensor, n_categories: int, event_shape: tuple[int, ...], who: str, values: bool = True
) -> None:
    """Raise a ValueError naming ``who`` unless ``x`` is an integer ``Tensor[B, *event_shape]``
    with values in ``0..n_categories-1``.

    The type and shape are always checked (free); the values only with ``values`` (one
    device-to-host synchronisation: callers pass ``not self.batches_within(0, n_categories - 1)``
    so that batches of this library's data modules are not checked again, see
    :meth:`DensityModel.batches_within`)."""
    expected = (
        f"an integer tensor [B, {', '.join(map(str, event_shape))}]"
        if event_shape
        else ("an integer tensor [B]")
    )
    expected += f" with values in 0..{n_categories - 1}"
    if not isinstance(x, Tensor) or x.dtype.is_floating_point or x.dtype.is_complex:
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{who} expects {expected}, got {got}")
    if tuple(x.shape[1:]) != tuple(event_shape) or x.dim() != len(event_shape) + 1:
        raise ValueError(f"{who} expects {expected}, got shape {tuple(x.shape)}")
    if values and x.numel():
        low, high = torch.stack(torch.aminmax(x)).tolist()  # one synchronisation
        if low < 0 or high >= n_categories:
            raise ValueError(f"{who} expects {expected}, got values in {low}..{high}")


def declared_value_range(loaders: Any) -> tuple[int, int] | None:
    """The smallest and largest value that every loader in ``loaders`` (one DataLoader, or a
    list/tuple/dict of them) declares in its ``value_range`` attribute, or None if one does not.

    This library's data modules set ``value_range`` on their loaders: the extremes of their
    integer data, computed once when the data is loaded (:class:`datamodules.base.ArrayDataModule`).
    """
    if isinstance(loaders, dict):
        loaders = list(loaders.values())
    elif not isinstance(loaders, (list, tuple)):
        loaders = [loaders]
    ranges = [getattr(loader, "value_range", None) for loader in loaders]
    if not ranges or any(r is None for r in ranges):
        return None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def split_batch(batch: Tensor | tuple | list) -> tuple[Tensor, Tensor | None]:
    """``(x, y)`` from a batch that is ``x`` (then ``y`` is None) or ``(x, y)``."""
    if isinstance(batch, (tuple, list)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def unpack_batch(batch: Tensor | tuple | list) -> Tensor:
    """Return ``x`` from a batch that is ``x`` or ``(x, y)``."""
    return split_batch(batch)[0]


class DensityModel(pl.LightningModule, metaclass=ABCMeta):
    """Base LightningModule of every model: subclasses implement ``nll``, ``n_dims`` and ``sample``.

    Args:
        lr: learning rate of the Adam optimiser.
    """

    #: names of per-example loss terms (nats) besides ``nll`` that :meth:`loss_terms` returns.
    #: Terms that depend on constructor arguments (e.g. one KL per latent dimension) are set on
    #: the instance before ``DensityModel.__init__`` runs, which builds one metric per term.
    extra_terms: tuple[str, ...] = ()

    #: classes of a class-conditional model (it reads labels ``y`` in 0..n_classes-1); 0 for a
    #: model that ignores labels. Conditional models set it on the instance.
    n_classes: int = 0

    def __init__(self, lr: float = 1e-3) -> None:
        super().__init__()
        if not lr > 0:
            raise ModelConfigError(f"lr must be > 0, got {lr}")
        self.lr = lr
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{term}": MeanMetric()
                for stage in ("val", "test")
                for term in ("nll", *self.extra_terms)
            }
        )

    # ------------------------------------------------------------------ the contract
    @property
    @abstractmethod
    def n_dims(self) -> int:
        """Dimensions per example (for bits/dim)."""
        raise NotImplementedError

    @abstractmethod
    def nll(self, x: Tensor) -> Tensor:
        """Negative log-likelihood of each example in nats, shape ``[B]``."""
        raise NotImplementedError

    @abstractmethod
    def sample(self, n: int) -> Tensor:
        """``n`` samples shaped and typed like a batch ``x``, on the model's device."""
        raise NotImplementedError

    def loss_terms(self, x: Tensor, y: Tensor | None = None) -> dict[str, Tensor]:
        """Per-example loss terms in nats: ``{"nll": Tensor[B]}`` plus one per ``extra_terms``.
        ``y``: the labels, given to class-conditional models only."""
        return {"nll": self.nll(x) if y is None else self.nll(x, y)}

    def batch_loss_terms(self, batch: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """``x`` and :meth:`loss_terms` of a batch ``x`` or ``(x, y)``: the labels go to a
        class-conditional model, which stops when the batch has none; other models ignore them."""
        x, y = split_batch(batch)
        if not self.n_classes:
            return x, self.loss_terms(x)
        if y is None:
            raise ModelConfigError(
                f"{type(self).__name__} is class-conditional (n_classes={self.n_classes}) but the "
                "batch has no labels: use data that yields (x, y) (e.g. coloured MNIST from "
                "the embedded digits or MNIST IDX files), or set model.init_args.n_classes: 0"
            )
        return x, self.loss_terms(x, y)

    def check_labels(self, y: Tensor | None, batch_size: int) -> None:
        """Raise :class:`ModelConfigError` unless ``y`` fits the model: ``None`` for a model that
        ignores labels; for a class-conditional one an integer ``Tensor[batch_size]`` with values
        in 0..n_classes-1."""
        who = type(self).__name__
        if not self.n_classes:
            if y is not None:
                raise ModelConfigError(
                    f"{who} was built with n_classes=0 (unconditional) and reads no labels, "
                    "but labels were given; pass none, or build it with n_classes > 0"
                )
            return
        expected = (
            f"{who} (n_classes={self.n_classes}) expects labels as an integer tensor "
            f"[{batch_size}] with values in 0..{self.n_classes - 1}"
        )
        if y is None:
            raise ModelConfigError(f"{expected}, got none")
        if (
            not isinstance(y, Tensor)
            or y.dtype.is_floating_point
            or y.dtype.is_complex
            or y.dtype == torch.bool
        ):
            got = y.dtype if isinstance(y, Tensor) else type(y).__name__
            raise ModelConfigError(f"{expected}, got {got}")
        if tuple(y.shape) != (batch_size,):
            raise ModelConfigError(f"{expected}, got shape {tuple(y.shape)}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
            raise ModelConfigError(f"{expected}, got values in {int(y.min())}..{int(y.max())}")

    # ------------------------------------------------------------------ helpers
    def batches_within(self, low: int, high: int) -> bool:
        """True when the batches now being served come from loaders that declare values within
        ``low..high`` (:func:`declared_value_range`): a Lightning loop is running (fit, validate,
        test, predict) and every loader of its stage carries a ``value_range`` inside the bounds.

        Models skip their per-batch value checks then (each is a device-to-host synchronisation);
        data given to the model directly, or through loaders that declare nothing (a user's own),
        is checked. A callback that calls ``nll`` on data of its own during a loop must pass
        values in range (the figures of this library use model samples and full grids)."""
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a Trainer
            return False
        state = trainer.state
        if trainer is None or state.status != TrainerStatus.RUNNING:
            return False
        loaders = {
            RunningStage.TRAINING: lambda: trainer.train_dataloader,
            RunningStage.SANITY_CHECKING: lambda: trainer.val_dataloaders,
            RunningStage.VALIDATING: lambda: trainer.val_dataloaders,
            RunningStage.TESTING: lambda: trainer.test_dataloaders,
            RunningStage.PREDICTING: lambda: trainer.predict_dataloaders,
        }.get(state.stage)
        declared = declared_value_range(loaders()) if loaders is not None else None
        return declared is not None and low <= declared[0] and declared[1] <= high

    def to_bpd(self, nats: Tensor) -> Tensor:
        """Convert nats per example to bits per dimension."""
        return nats / (self.n_dims * LN2)

    @staticmethod
    def _log_name(stage: str, term: str) -> str:
        return f"{stage}/bpd" if term == "nll" else f"{stage}/{term}_bpd"

    # ------------------------------------------------------------------ Lightning steps
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, terms = self.batch_loss_terms(batch)
        loss = terms["nll"].mean() / self.n_dims  # nats/dim
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at global step {self.global_step}, "
                f"epoch {self.current_epoch}, batch {batch_idx}"
            )
        for term, value in terms.items():
            self.log(
                self._log_name("train", term),
                self.to_bpd(value.detach().mean()),
                on_step=True,
                on_epoch=False,
                prog_bar=term == "nll",
                batch_size=x.shape[0],
            )
        return loss

    def _eval_step(self, stage: str, batch: Any) -> None:
        _, terms = self.batch_loss_terms(batch)
        for term, value in terms.items():
            metric = self.metrics[f"{stage}_{term}"]
            metric.update(self.to_bpd(value.detach()))
            self.log(
                self._log_name(stage, term),
                metric,
                on_step=False,
                on_epoch=True,
                prog_bar=term == "nll",
            )

    def _reset_metrics(self, stage: str) -> None:
        """Fresh metric state created under the running loop's grad mode: states left by an
        inference-mode ``validate()`` would otherwise break a later ``fit()`` (no-grad) loop."""
        for term in ("nll", *self.extra_terms):
            self.metrics[f"{stage}_{term}"].reset()

    def on_validation_epoch_start(self) -> None:
        self._reset_metrics("val")

    def on_test_epoch_start(self) -> None:
        self._reset_metrics("test")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step("test", batch)

    def setup(self, stage: str) -> None:
        """One intra-op thread for small models on CPU unless the user chose a count
        (:mod:`ar_models.threads`); subclasses that override ``setup`` call ``super().setup``."""
        self._threads_before = choose_threads(self, self.trainer.strategy.root_device)

    def teardown(self, stage: str) -> None:
        restore_threads(getattr(self, "_threads_before", None))
        self._threads_before = None

    def on_fit_start(self) -> None:
        """Stop at once, with what to set, when the data's number of categories per dimension
        (a DataModule's ``n_categories``) differs from the model's."""
        model_k = getattr(self, "n_categories", None)
        datamodule = getattr(self.trainer, "datamodule", None)
        data_k = getattr(datamodule, "n_categories", None)
        if model_k is not None and data_k is not None and int(data_k) != int(model_k):
            raise ModelConfigError(
                f"the data has n_categories={data_k} but {type(self).__name__} was built with "
                f"n_categories={model_k}; set model.init_args.n_categories to {data_k}"
            )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)
