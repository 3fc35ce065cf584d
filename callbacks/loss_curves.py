"""Loss curves: train bits/dim per step and validation (and test) bits/dim per epoch, same axes.

Each panel's title names the model and the quantity (the negative log-likelihood, or for a model
with a KL term the negative ELBO, and its terms); when the y range leaves training points out
(the first steps sit far above the rest), the title says how many.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure

from callbacks.figures import save_figure, should_draw
from callbacks.hooks import optional_hook

#: what each logged term measures, for the panel titles (``bpd`` depends on the model).
TERM_NAMES = {"kl_bpd": "KL term", "recon_bpd": "reconstruction term"}


def checkpoint_step(ckpt_path: str | None, default: int) -> int:
    """The training step at which ``ckpt_path`` was saved (``default`` without a checkpoint)."""
    if not ckpt_path or not Path(ckpt_path).is_file():
        return default
    checkpoint = torch.load(ckpt_path, map_location="cpu", mmap=True, weights_only=True)
    return int(checkpoint.get("global_step", default))


def quantity_name(term: str, pl_module: pl.LightningModule | None) -> str:
    """What ``<stage>/<term>`` measures: ``bpd`` is the negative log-likelihood, or the negative
    ELBO for a model whose loss has a KL term; ``kl_bpd`` the KL term, and so on."""
    if term == "bpd":
        has_kl = "kl" in optional_hook(pl_module, "extra_terms", ())
        return "negative ELBO" if has_kl else "negative log-likelihood"
    return TERM_NAMES.get(term, term.removesuffix("_bpd"))


def points_outside(
    history: dict[str, list[tuple[int, float]]], term: str, limits: tuple[float, float]
) -> tuple[int, int, int]:
    """(below, above, total): finite training points under and over the y range ``limits``."""
    train = [v for _, v in history.get(f"train/{term}", []) if math.isfinite(v)]
    bottom, top = limits
    return sum(v < bottom for v in train), sum(v > top for v in train), len(train)


def clipping_note(below: int, above: int, total: int) -> str:
    """A line saying how many training points the y range leaves out ("" when none)."""
    parts = [f"{count:,} {where}" for count, where in ((above, "above"), (below, "below")) if count]
    if not parts:
        return ""
    return f"y range clipped: {' and '.join(parts)} of {total:,} training points not shown"


def y_limits(history: dict[str, list[tuple[int, float]]], term: str) -> tuple[float, float] | None:
    """A y range that shows the converging part of the curves: the first 5% of the training steps
    (often far above the rest) and the top 1% of per-step noise may fall outside it; validation
    and test points are always inside."""
    train = [v for _, v in history.get(f"train/{term}", []) if math.isfinite(v)]
    late = sorted(train[len(train) // 20 :])
    shown = [late[int(0.99 * (len(late) - 1))], late[0]] if late else []
    for stage in ("val", "test"):
        shown += [v for _, v in history.get(f"{stage}/{term}", []) if math.isfinite(v)]
    if not shown:
        return None
    bottom, top = min(shown), max(shown)
    margin = 0.05 * (top - bottom) or 0.05 * abs(top) or 0.1
    return bottom - margin, top + margin


class LossCurves(pl.Callback):
    """Curves of the loss and its terms in bits/dim against the training step.

    Records ``train/<term>`` every step and ``val/<term>``, ``test/<term>`` per evaluation, and
    draws one panel per term (x = training step, y = bits/dim) at the end of fit, after a test run,
    and when training stops on an exception.

    Args:
        terms: logged metric suffixes to draw: ``["bpd"]``, or ``["bpd", "kl_bpd", "recon_bpd"]``.
        name: figure name (``figures/<name>.png``).
    """

    def __init__(self, terms: list[str] | None = None, name: str = "loss_curves") -> None:
        self.terms = list(terms) if terms else ["bpd"]
        self.name = name
        self.history: dict[str, list[tuple[int, float]]] = {}

    def _record(self, trainer: pl.Trainer, stage: str, step: int) -> None:
        for term in self.terms:
            value = trainer.callback_metrics.get(f"{stage}/{term}")
            if value is not None:
                self.history.setdefault(f"{stage}/{term}", []).append((step, float(value)))

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._record(trainer, "train", trainer.global_step)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._record(trainer, "val", trainer.global_step)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, "test", checkpoint_step(trainer.ckpt_path, trainer.global_step))
        self.draw(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.draw(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exc: BaseException
    ) -> None:
        self.draw(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume the curves of an interrupted run; a live history (e.g. when the best checkpoint
        is restored for testing after fit) is kept, not replaced by the checkpoint's older one."""
        if not self.history:
            self.history = {k: [tuple(p) for p in v] for k, v in state_dict["history"].items()}

    def draw(self, trainer: pl.Trainer) -> None:
        """One panel per term; nothing without training history (a test of a checkpoint alone
        has a single point to show)."""
        if not should_draw(trainer) or not any(k.startswith("train/") for k in self.history):
            return
        pl_module = trainer.lightning_module
        model_name = type(pl_module).__name__ if pl_module is not None else "model"
        fig = Figure(figsize=(6.4 * len(self.terms), 4.4), layout="constrained")
        axes = fig.subplots(1, len(self.terms), squeeze=False)[0]
        styles = {
            "train": dict(lw=0.8, alpha=0.6, label="train (per minibatch)"),
            "val": dict(marker="o", lw=1.8, label="validation (per epoch)"),
            "test": dict(marker="*", ms=12, ls="none", label="test (tested checkpoint)"),
        }
        for ax, term in zip(axes, self.terms, strict=True):
            for stage, style in styles.items():
                points = [p for p in self.history.get(f"{stage}/{term}", []) if math.isfinite(p[1])]
                if points:
                    steps, values = zip(*points, strict=True)
                    ax.plot(steps, values, **style)
            title = f"{model_name}: {quantity_name(term, pl_module)} (bits/dim)"
            limits = y_limits(self.history, term)
            if limits is not None:
                ax.set_ylim(*limits)
                note = clipping_note(*points_outside(self.history, term, limits))
                title += f"\n{note}" if note else ""
            ax.set_xlabel("training step")
            ax.set_ylabel("bits/dim")
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend()
        save_figure(trainer, fig, self.name)
