"""Training speed with one intra-op thread against torch's default, side by side in one run.

    python benchmarks/threads.py [--configs 'configs/**/*.yaml'] [--sweep] [--steps 20]
                                 [--warmup 3] [--budget 60] [--markdown FILE] [--plot PNG]
    python benchmarks/threads.py --from-table FILE.md [FILE.md ...] --plot PNG   # redraw

For every config (the model and data module it names, trained by a plain ``pl.Trainer`` without the
config's figure callbacks) and, with ``--sweep``, for MLP and convolutional models of growing size,
training batches alternate between 1 thread and torch's default thread count (``N``, as it was
when the script started: ``OMP_NUM_THREADS`` or the number of cores), batch by batch, so that
machine noise hits both alike. Each row gives the median milliseconds of a training step
(forward, backward, optimiser step; from ``on_train_batch_start`` to ``on_train_batch_end``) with
each setting, their ratio (> 1: one thread is faster), the model's kind and size, and what
:func:`ar_models.threads.prefers_one_thread` chooses for it. A config stops after ``--steps``
steps per setting or ``--budget`` seconds (at least 3 per setting).

Run it on an idle machine to see the compute-bound line; on a machine shared with other jobs it
shows what contention for cores does to a second thread.
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LightningCLI

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import ar_models  # noqa: E402, F401  (registers the model classes)
import datamodules  # noqa: E402, F401
import vae_models  # noqa: E402, F401
from ar_models.base import DensityModel  # noqa: E402
from ar_models.threads import model_kind, n_parameters, prefers_one_thread  # noqa: E402

DEFAULT_THREADS = torch.get_num_threads()


class AlternatingThreads(pl.Callback):
    """Even batches with 1 thread, odd ones with ``n`` threads; records each step's seconds."""

    def __init__(self, n: int, warmup: int, steps: int, budget: float) -> None:
        self.settings = (1, n)
        self.warmup, self.steps, self.budget = warmup, steps, budget
        self.times: dict[int, list[float]] = {1: [], n: []}
        self._start = 0.0
        self._began = time.monotonic()
        self._current = 1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._began = time.monotonic()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._current = self.settings[trainer.global_step % 2]
        torch.set_num_threads(self._current)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        elapsed = time.perf_counter() - self._start
        if trainer.global_step > 2 * self.warmup:
            self.times[self._current].append(elapsed)
        counts = [len(t) for t in self.times.values()]
        over_budget = time.monotonic() - self._began > self.budget and min(counts) >= 3
        if min(counts) >= self.steps or over_budget:
            trainer.should_stop = True


def build_from_config(config: str) -> tuple[DensityModel, pl.LightningDataModule]:
    """The model and data module that ``config`` names (its trainer section is not used)."""
    cli = LightningCLI(
        DensityModel,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        save_config_callback=None,
        args=["--config", config, "--trainer.logger=false", "--trainer.callbacks=[]"],
    )
    return cli.model, cli.datamodule


def sweep_models() -> list[tuple[str, DensityModel, pl.LightningDataModule]]:
    """MLPs and PixelCNNs of growing size on their usual data."""
    from ar_models.pixelcnn import PixelCNN
    from datamodules import ColoredMNISTDataModule, Toy2DDataModule
    from vae_models.vae2d import VAE2D

    rows: list[tuple[str, DensityModel, pl.LightningDataModule]] = []
    for hidden in (128, 512, 1024, 2048):
        for batch in (256, 2048):
            rows.append(
                (
                    f"VAE2D hidden {hidden}, batch {batch}",
                    VAE2D(hidden_sizes=[hidden, hidden]),
                    Toy2DDataModule(dataset=1, batch_size=batch),
                )
            )
    for filters, batch in ((16, 16), (32, 16), (64, 32), (128, 32)):
        rows.append(
            (
                f"PixelCNN {filters} filters x 4 blocks, batch {batch}",
                PixelCNN(n_filters=filters, n_layers=4),
                ColoredMNISTDataModule(batch_size=batch),
            )
        )
    return rows


def time_training(
    model: DensityModel, data: pl.LightningDataModule, args: argparse.Namespace
) -> dict[int, float]:
    """Median seconds per training step with 1 and with ``DEFAULT_THREADS`` threads."""
    timer = AlternatingThreads(DEFAULT_THREADS, args.warmup, args.steps, args.budget)
    trainer = pl.Trainer(
        max_epochs=1000,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=data)
    torch.set_num_threads(DEFAULT_THREADS)
    return {n: statistics.median(t) for n, t in timer.times.items()}


def row(name: str, model: DensityModel, batch: Any, medians: dict[int, float]) -> list[str]:
    one, many = medians[1], medians[DEFAULT_THREADS]
    return [
        name,
        model_kind(model),
        f"{n_parameters(model):,}",
        str(batch),
        f"{1000 * one:.2f}",
        f"{1000 * many:.2f}",
        f"{many / one:.2f}",
        "1" if prefers_one_thread(model) else "default",
    ]


def read_tables(paths: list[Path]) -> list[list[str]]:
    """The data rows of markdown tables written by ``--markdown``."""
    rows = []
    for path in paths:
        for line in path.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 8 and cells[0] not in ("model", "") and not cells[0].startswith("-"):
                rows.append(cells)
    return rows


def plot(rows: list[list[str]], path: Path, title: str) -> None:
    """Horizontal bars of the ratio (N threads / 1) per row, log scale, 1 marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r[0].removeprefix("configs/").removesuffix(".yaml") for r in rows]
    ratios = [float(r[6]) for r in rows]
    colours = ["tab:blue" if r[1] == "mlp" else "tab:orange" for r in rows]
    figure, axes = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2))
    axes.barh(range(len(rows)), ratios, color=colours)
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_yticks(range(len(rows)), names, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("step time with default threads / with one thread (> 1: one is faster)")
    axes.set_title(title, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("tab:blue", "tab:orange")]
    axes.legend(handles, ["no convolutions", "convolutional"], fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="configs/**/*.yaml", help="glob, from the repo root")
    parser.add_argument("--no-configs", action="store_true", help="only the --sweep models")
    parser.add_argument("--sweep", action="store_true", help="also MLPs and PixelCNNs by size")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per setting")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per model at most")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--plot", type=Path, help="draw the ratios into this PNG")
    parser.add_argument("--title", default="", help="title of the --plot figure")
    parser.add_argument("--from-table", type=Path, nargs="+", help="redraw tables, no measuring")
    args = parser.parse_args()
    if args.from_table:
        plot(read_tables(args.from_table), args.plot, args.title)
        return
    warnings.filterwarnings("ignore")
    pl.seed_everything(0, verbose=False)

    cases: list[tuple[str, DensityModel, pl.LightningDataModule]] = []
    if not args.no_configs:
        for config in sorted(glob.glob(str(REPO / args.configs), recursive=True)):
            model, data = build_from_config(config)
            cases.append((str(Path(config).relative_to(REPO)), model, data))
    if args.sweep:
        cases += sweep_models()

    header = [
        "model",
        "kind",
        "parameters",
        "batch",
        "ms/step, 1 thread",
        f"ms/step, {DEFAULT_THREADS} threads",
        f"{DEFAULT_THREADS} threads / 1",
        "library picks",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    print(f"torch {torch.__version__}, default intra-op threads {DEFAULT_THREADS}", flush=True)
    measured = []
    for name, model, data in cases:
        medians = time_training(model, data, args)
        measured.append(row(name, model, getattr(data, "batch_size", "?"), medians))
        lines.append("| " + " | ".join(measured[-1]) + " |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\n" + table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.plot:
        plot(measured, args.plot, args.title)


if __name__ == "__main__":
    main()
