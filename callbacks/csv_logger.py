"""``metrics.csv`` of a run: one row per logging call, continued (not deleted) by a resumed run.

Columns: ``epoch``, ``step`` and every metric name, sorted (as Lightning's ``CSVLogger`` writes
them); a row leaves empty the metrics it does not hold. Each row is appended as it is logged, so a
run killed at any moment keeps every row logged before. A new metric name rewrites the file with
the wider header. Hyper-parameters go to ``hparams.yaml`` beside it.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv``; a run resumed into the same folder
(``--ckpt_path last``) would lose the rows logged before the stop. This logger keeps them, and
:class:`TrimMetricsOnResume` drops the rows that the resumed run will log again (those at or after
the checkpoint's step), so every step is in the file once.
"""

from __future__ import annotations

import csv
import os
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.core.saving import save_hparams_to_yaml
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

METRICS_FILE = "metrics.csv"
HPARAMS_FILE = "hparams.yaml"


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a CSV file (empty for a missing file)."""
    if not path.is_file():
        return [], []
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


def write_rows(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    """Replace ``path`` by a CSV file with ``header`` and ``rows``, atomically (a temporary file
    renamed over it: a crash leaves the old or the new file, never half of one)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


class MetricsCSVLogger(Logger):
    """Writes ``<save_dir>/metrics.csv`` and ``<save_dir>/hparams.yaml`` (see the module doc).

    ``name`` and ``version`` are empty, so Lightning puts checkpoints in ``<save_dir>/checkpoints``.
    ``class_path``: the model's class, recorded in ``hparams.yaml`` as ``_class_path`` (as in a
    checkpoint; Lightning leaves it out of the hyper-parameters it logs).
    """

    def __init__(self, save_dir: str | Path, class_path: str | None = None) -> None:
        super().__init__()
        self._save_dir = Path(save_dir)
        self.hparams: dict[str, Any] = {} if class_path is None else {"_class_path": class_path}
        self._header: list[str] | None = None  # the file's columns, read on the first row

    @property
    def name(self) -> str:
        return ""

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self._save_dir)

    @property
    def log_dir(self) -> str:
        return str(self._save_dir)

    @property
    def metrics_path(self) -> Path:
        return self._save_dir / METRICS_FILE

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        self.hparams.update(vars(params) if isinstance(params, Namespace) else dict(params))
        self._save_dir.mkdir(parents=True, exist_ok=True)
        save_hparams_to_yaml(self._save_dir / HPARAMS_FILE, self.hparams)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        row: dict[str, Any] = {k: v.item() if hasattr(v, "item") else v for k, v in metrics.items()}
        if step is not None:
            row["step"] = step
        self._save_dir.mkdir(parents=True, exist_ok=True)
        if self._header is None:
            self._header = read_rows(self.metrics_path)[0]
        if self._header and set(row) <= set(self._header):
            with self.metrics_path.open("a", newline="") as file:
                csv.DictWriter(file, fieldnames=self._header).writerow(row)
            return
        old_header, rows = read_rows(self.metrics_path)
        self._header = sorted({*old_header, *row})
        write_rows(self.metrics_path, self._header, [*rows, row])

    @rank_zero_only
    def drop_rows_from(self, step: int) -> int:
        """Remove the rows logged at training step ``step`` or later; returns how many."""
        header, rows = read_rows(self.metrics_path)
        kept = [row for row in rows if row.get("step") in (None, "") or int(row["step"]) < step]
        if len(kept) < len(rows):
            write_rows(self.metrics_path, header, kept)
        return len(rows) - len(kept)


class TrimMetricsOnResume(pl.Callback):
    """Drops from ``metrics.csv`` the rows that a resumed fit logs again.

    When ``fit`` resumes from a checkpoint, drops from ``metrics.csv`` the rows logged at or
    after the checkpoint's step: the resumed run logs those steps again."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.ckpt_path:
            return
        for logger in trainer.loggers:
            if isinstance(logger, MetricsCSVLogger):
                dropped = logger.drop_rows_from(trainer.global_step)
                if dropped:
                    rank_zero_info(
                        f"{logger.metrics_path}: dropped {dropped} row(s) logged at step "
                        f"{trainer.global_step} or later, which the resumed run logs again"
                    )
