"""PixelCNN speed, measured side by side in one run: training throughput and sampling time.

    python benchmarks/pixelcnn_speed.py [--device cpu|cuda] [--rounds 5] [--n-samples 100]
                                        [--glibc-malloc-defaults] [--kernel-size 3]
                                        [--skip-sampling]

(a) Training steps (forward, backward, Adam) on batches of 128 coloured-MNIST-shaped images,
    images/s: ``ar_models.PixelCNN`` against the textbook masked-weight form of
    ``benchmarks/reference_pixelcnn.py`` with the same parameters (checked to give the same NLL).
    The two alternate step by step, so that machine noise hits both alike; medians are reported.
    Next to each form: its multiply-adds per pixel (forward), and the speed-up that the taps
    alone allow (textbook multiply-adds / ours). ``--kernel-size 7`` trains a network whose
    residual blocks use 7×7 instead of 3×3 convs: there the masks zero about half the work.
(b) Time to draw ``n`` samples: the cached sampler against the naive loop, for ``PixelCNN``
    and ``GatedPixelCNN``, each with both channel models (factorised and ``"made"``:
    PixelCNN-MADE), at the handout's size (12 blocks or gated layers of 128 filters). The naive
    loop (the naive reference stepper of :mod:`ar_models.sampling`, ``CropStepper``: one pass on
    the crop each pixel can see) is timed on every ``--stride``-th pixel position (all rows,
    evenly spread) and scaled to all H·W positions; the cached sampler runs whole. The textbook
    naive loop (whole network per pixel) is estimated the same way.

Like ``train.py``, the script first makes glibc keep freed memory for reuse
(:mod:`ar_models.allocator`; it applies to every form alike); ``--glibc-malloc-defaults`` skips
that, to measure its share. Prints one table; ratios > 1 mean ours is faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Literal

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_pixelcnn import TextbookPixelCNN  # noqa: E402

from ar_models.allocator import keep_freed_memory  # noqa: E402
from ar_models.gated_pixelcnn import GatedPixelCNN  # noqa: E402
from ar_models.masked_conv import MaskedConv2d  # noqa: E402
from ar_models.pixelcnn import PixelCNN  # noqa: E402
from ar_models.sampling import CropStepper  # noqa: E402

SHAPE = (3, 28, 28)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def multiply_adds_per_pixel(model: torch.nn.Module, taps: Literal["computed", "exact"]) -> int:
    """Forward multiply-adds per output pixel of every conv in ``model``.

    ``taps``: ``"computed"`` counts the kernel each form convolves with (the textbook's full k×k,
    our k//2 + 1 upper rows); ``"exact"`` counts only the taps the masks keep."""
    total = 0
    for conv in model.modules():
        if not isinstance(conv, torch.nn.Conv2d):
            continue
        k_h, k_w = conv.kernel_size
        if taps == "exact":
            n_taps = int(conv.mask[0, 0].count_nonzero())
        elif isinstance(conv, MaskedConv2d) and k_h > 1:
            n_taps = (k_h // 2 + 1) * k_w
        else:
            n_taps = k_h * k_w
        total += conv.in_channels * conv.out_channels * n_taps
    return total


def train_throughput(
    device: str, rounds: int, batch: int, kernel_size: int = 3
) -> tuple[dict[str, float], float, dict[str, int]]:
    """Median images/s per form, the max |ΔNLL| between ours and the textbook form, and the
    forward multiply-adds per pixel of each form (plus ``"exact taps"``)."""
    torch.manual_seed(0)
    ours = PixelCNN(image_shape=SHAPE, kernel_size=kernel_size).to(device)
    state = {k: v for k, v in ours.state_dict().items() if k.startswith("net.")}
    forms = {"ours": ours}
    for name, channels_last in (("textbook", False), ("textbook, channels-last", True)):
        forms[name] = TextbookPixelCNN(
            SHAPE, kernel_size=kernel_size, channels_last=channels_last
        ).to(device)
        forms[name].load_state_dict(state)
    x = torch.randint(0, 4, (batch, *SHAPE), device=device)
    with torch.no_grad():
        gap = (ours.nll(x) - forms["textbook"].nll(x)).abs().max().item()
    optims = {k: torch.optim.Adam(m.parameters(), 1e-3) for k, m in forms.items()}
    times: dict[str, list[float]] = {name: [] for name in forms}
    for step in range(rounds + 1):
        for name, model in forms.items():
            sync(device)
            start = time.perf_counter()
            loss = model.nll(x).mean()
            optims[name].zero_grad()
            loss.backward()
            optims[name].step()
            sync(device)
            if step > 0:  # the first round warms up
                times[name].append(time.perf_counter() - start)
    macs = {name: multiply_adds_per_pixel(model.net, "computed") for name, model in forms.items()}
    macs["exact taps"] = multiply_adds_per_pixel(ours.net, "exact")
    return {name: batch / statistics.median(t) for name, t in times.items()}, gap, macs


def time_call(fn, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def naive_estimate(model, n: int, stride: int, device: str, textbook: bool = False) -> float:
    """Seconds for the naive loop over all H·W pixels, from every ``stride``-th position."""
    c, h, w = SHAPE
    positions = list(range(0, h * w, stride))
    x_in = model.embed(torch.zeros(n, c, h, w, dtype=torch.long, device=device))
    stepper = None if textbook else CropStepper(model.features, x_in, model.receptive_radius)

    def run() -> None:
        with torch.no_grad():
            for i in positions:
                row, col = divmod(i, w)
                if stepper is None:
                    model.net(x_in)
                else:
                    stepper.step(row, col)

    return time_call(run, device) * (h * w) / len(positions)


SAMPLED_MODELS = {
    "PixelCNN": lambda: PixelCNN(image_shape=SHAPE),
    "PixelCNN-MADE": lambda: PixelCNN(image_shape=SHAPE, channel_model="made"),
    "GatedPixelCNN (MADE channels)": lambda: GatedPixelCNN(image_shape=SHAPE),
    "GatedPixelCNN (factorised channels)": lambda: GatedPixelCNN(
        image_shape=SHAPE, channel_model="factorised"
    ),
}


def sampling(device: str, n: int, stride: int) -> list[tuple[str, float, float, float]]:
    """Per model at the handout's size (128 filters, 12 blocks or gated layers): seconds of the
    cached sampler, of our naive loop (est.) and of the textbook naive loop (est.)."""
    rows = []
    for name, build in SAMPLED_MODELS.items():
        torch.manual_seed(0)
        model = build().to(device).eval()
        cached = time_call(lambda m=model: m.sample(n, cached=True), device)
        naive = naive_estimate(model, n, stride, device)
        textbook = naive_estimate(model, n, stride * 4, device, textbook=True)
        rows.append((name, cached, naive, textbook))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--n-samples", type=int, default=100)
    parser.add_argument("--stride", type=int, default=16, help="naive loop: time every k-th pixel")
    parser.add_argument(
        "--glibc-malloc-defaults",
        action="store_true",
        help="leave glibc's malloc thresholds alone (train.py raises them)",
    )
    parser.add_argument(
        "--kernel-size", type=int, default=3, help="training: kernel of the blocks' middle conv"
    )
    parser.add_argument("--skip-sampling", action="store_true", help="only the training table")
    args = parser.parse_args()

    kept = False if args.glibc_malloc_defaults else keep_freed_memory()
    print(
        f"device: {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"freed memory kept for reuse: {'yes' if kept else 'no (glibc defaults)'}"
    )
    speed, gap, macs = train_throughput(args.device, args.rounds, args.batch, args.kernel_size)
    k = args.kernel_size
    print(f"\n(a) training steps, batch {args.batch} (max |NLL difference| {gap:.2e} nats)")
    print(
        f"| form (PixelCNN 128 filters × 12 blocks, {k}×{k} in the blocks) | images/s "
        "| ours / this | multiply-adds per pixel | bound from taps: this / ours |"
    )
    print("|---|---|---|---|---|")
    for name, rate in speed.items():
        print(
            f"| {name} | {rate:.1f} | {speed['ours'] / rate:.2f}× | {macs[name] / 1e3:.0f}k "
            f"| {macs[name] / macs['ours']:.2f}× |"
        )
    exact = macs["exact taps"]
    print(
        f"| (only the taps the masks keep) | | | {exact / 1e3:.0f}k "
        f"| at most {macs['textbook'] / exact:.2f}× over the textbook |"
    )
    if args.skip_sampling:
        return

    print(f"\n(b) drawing {args.n_samples} samples of 3×28×28 (seconds)")
    print("| model | cached | naive (est.) | naive / cached | textbook naive (est.) | ratio |")
    print("|---|---|---|---|---|---|")
    for name, cached, naive, textbook in sampling(args.device, args.n_samples, args.stride):
        print(
            f"| {name} | {cached:.1f} | {naive:.0f} | {naive / cached:.0f}× "
            f"| {textbook:.0f} | {textbook / cached:.0f}× |"
        )


if __name__ == "__main__":
    main()
