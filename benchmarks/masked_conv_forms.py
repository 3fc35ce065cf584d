"""One type-B masked 3×3 conv computed five ways: forward + backward time, side by side in one run.

    python benchmarks/masked_conv_forms.py [--batch 128] [--channels 64] [--rounds 10]

The layer is the middle conv of the default PixelCNN's residual blocks (64 → 64 channels on
28×28, channels-last, as ``SpatialNet`` runs it on CPU). Its mask keeps 5 of the 9 taps: the row
above (3) and the centre row up to the centre (2). Forms:

* ``masked 3×3``: the textbook ``conv2d(x, W ⊙ M, padding=1)`` (9 taps computed);
* ``cropped 2×3`` (``ar_models.masked_conv.MaskedConv2d``): the rows above and at the centre over
  an input padded on top only (6 taps);
* ``rows as channels, 1×3``: the row above and the centre row stacked as 2C channels (6 taps);
* ``five shifted copies, 1×1``: the exact taps as one 1×1 conv over 5C channels (5 taps);
* ``1×3 above + 1×2 row``: the exact taps as two convs summed (5 taps).

All forms are checked against the textbook one; the forms alternate round by round and medians
are printed with the speed-up over the textbook form.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ar_models.allocator import keep_freed_memory  # noqa: E402
from ar_models.masked_conv import raster_mask  # noqa: E402

MASK = raster_mask(3, "B")
EXACT_TAPS = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]  # (row, column) in the top-padded input


def masked_full(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return F.conv2d(x, w * MASK, b, padding=1)


def cropped(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    return F.conv2d(F.pad(x, (1, 1, 1, 0)), (w * MASK)[:, :, :2], b)


def rows_as_channels(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    padded = F.pad(x, (1, 1, 1, 0))
    stacked = torch.cat([padded[:, :, :-1], padded[:, :, 1:]], dim=1)  # [B, 2C, H, W + 2]
    kernel = (w * MASK)[:, :, :2]
    return F.conv2d(stacked, torch.cat([kernel[:, :, 0:1], kernel[:, :, 1:2]], dim=1), b)


def shifted_copies(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    h, width = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 0))
    copies = torch.cat([padded[:, :, i : i + h, j : j + width] for i, j in EXACT_TAPS], dim=1)
    return F.conv2d(copies, torch.cat([w[:, :, i : i + 1, j : j + 1] for i, j in EXACT_TAPS], 1), b)


def split_rows(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    above = F.conv2d(F.pad(x, (1, 1, 1, -1)), w[:, :, 0:1], b)  # row r-1, columns c-1..c+1
    return above + F.conv2d(F.pad(x, (1, 0, 0, 0)), w[:, :, 1:2, :2])  # row r, columns c-1..c


FORMS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "masked 3×3 (textbook)": masked_full,
    "cropped 2×3 (ours)": cropped,
    "rows as channels, 1×3": rows_as_channels,
    "five shifted copies, 1×1": shifted_copies,
    "1×3 above + 1×2 row": split_rows,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    c = args.channels
    x = torch.randn(args.batch, c, 28, 28).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w = torch.randn(c, c, 3, 3, requires_grad=True)
    b = torch.randn(c, requires_grad=True)
    grad = torch.randn_like(x)
    with torch.no_grad():
        reference = masked_full(x, w, b)
        for name, form in FORMS.items():
            gap = (form(x, w, b) - reference).abs().max().item()
            if gap > 1e-3 * reference.abs().max().item():
                raise AssertionError(f"{name} differs from the masked conv by {gap}")
    times: dict[str, list[float]] = {name: [] for name in FORMS}
    for round_ in range(args.rounds + 1):
        for name, form in FORMS.items():
            start = time.perf_counter()
            form(x, w, b).backward(grad)
            x.grad = w.grad = b.grad = None
            if round_ > 0:  # the first round warms up
                times[name].append(time.perf_counter() - start)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
        f"{c} → {c} channels on 28×28; forward + backward, median of {args.rounds}"
    )
    base = statistics.median(times["masked 3×3 (textbook)"])
    print("| form | taps computed | ms | textbook / this |")
    print("|---|---|---|---|")
    taps = [9, 6, 6, 5, 5]
    for (name, t), n_taps in zip(times.items(), taps, strict=True):
        median = statistics.median(t)
        print(f"| {name} | {n_taps} | {median * 1e3:.1f} | {base / median:.2f}× |")


if __name__ == "__main__":
    main()
