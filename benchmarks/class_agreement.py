"""Per-digit agreement of a class-conditional checkpoint: asked for digit c, how often is the
sample recognised as c (the digit reader of ``metrics``)?

    python benchmarks/class_agreement.py CHECKPOINT [--per-class 50] [--seed 0]

Loads the model (``model_checkpoints.load_model``: any class-conditional model with
``n_classes`` = 10), draws ``--per-class`` seeded samples of every
digit and prints one table row: the fraction read as the asked digit, per digit and on average.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callbacks.class_grid import class_agreement  # noqa: E402
from model_checkpoints import load_model  # noqa: E402


def agreement(model: torch.nn.Module, per_class: int, seed: int = 0) -> torch.Tensor:
    """``Tensor[n_classes]``: per class, the fraction of ``per_class`` seeded samples asked for
    it that the digit reader recognises as it."""
    labels = torch.arange(model.n_classes).repeat_interleave(per_class)
    torch.manual_seed(seed)
    with torch.no_grad():
        samples = model.sample(len(labels), y=labels)
    return class_agreement(samples, labels, int(model.n_categories), model.n_classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    per_digit = agreement(load_model(args.checkpoint), args.per_class, args.seed)
    print(
        f"| {args.per_class} samples per digit | " + " | ".join(map(str, range(10))) + " | mean |"
    )
    print("|---" * 12 + "|")
    cells = " | ".join(f"{a:.0%}" for a in per_digit.tolist())
    print(f"| read as the digit asked for | {cells} | {per_digit.mean():.1%} |")


if __name__ == "__main__":
    main()
