"""Read back what an offline W&B run wrote: the run's config and id from its ``run-<id>.wandb``.

The file is W&B's transaction log (the LevelDB log format): a 7-byte header (``:W&B``, a magic
number, a version), then 32 KiB blocks of records, each a 7-byte header (CRC-32, length,
type: 1 full, 2 first, 3 middle, 4 last part) and a piece of a serialised ``Record`` protobuf.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7


def records(path: Path) -> Iterator[Any]:
    """The ``wandb_internal_pb2.Record`` messages of an offline run file, in order."""
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert raw[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(raw):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # the rest of a block too short for a record header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + HEADER])
        if length == 0 and kind == 0:  # zero padding up to the end of the block
            pos += room
            continue
        pending += raw[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def run_file(run_dir: Path) -> Path:
    (path,) = run_dir.glob("run-*.wandb")
    return path


def run_id(run_dir: Path) -> str:
    """The W&B run id recorded in an ``offline-run-*`` folder."""
    for record in records(run_file(run_dir)):
        if record.WhichOneof("record_type") == "run":
            return record.run.run_id
    raise AssertionError(f"no run record in {run_dir}")


def run_config(run_dir: Path) -> dict[str, Any]:
    """The run's config as W&B received it: the run record's, updated by every config record."""
    config: dict[str, Any] = {}
    for record in records(run_file(run_dir)):
        kind = record.WhichOneof("record_type")
        items = record.run.config.update if kind == "run" else ()
        items = record.config.update if kind == "config" else items
        for item in items:
            key = item.key or ".".join(item.nested_key)
            config[key] = json.loads(item.value_json)
    return config


def run_name(run_dir: Path) -> str:
    """The W&B run name (display name) recorded in an ``offline-run-*`` folder."""
    for record in records(run_file(run_dir)):
        if record.WhichOneof("record_type") == "run":
            return record.run.display_name
    raise AssertionError(f"no run record in {run_dir}")


def history_keys(run_dir: Path) -> set[str]:
    """Every key logged to the run's history (metrics, and images as ``<key>.<field>``)."""
    keys: set[str] = set()
    for record in records(run_file(run_dir)):
        if record.WhichOneof("record_type") == "history":
            keys.update(item.key or ".".join(item.nested_key) for item in record.history.item)
    return keys
