"""What the sample-quality metric reads on images whose answer is known: held-out real test digits
(coloured MNIST and the 8-bit stand-in, never seen by the digit reader) and three kinds of
non-digits (uniform noise, random blobs, one-colour images).

    python benchmarks/sample_quality_calibration.py [--n 1000] [--seed 0]

Prints one row per image set: the fraction recognised as a digit, the entropy of the recognised
labels (bits; log2 10 = 3.32 when all ten digits are equally frequent), the digit reader's
accuracy where the images have labels, and the Fréchet distance of the reader's features to the
real test images of the same data (for the real rows: between two disjoint halves of the test
split, n/2 images each).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamodules.colored_mnist import ColoredMNISTDataModule  # noqa: E402
from datamodules.svhn import SVHNDataModule  # noqa: E402
from metrics import SampleQuality, digit_reader  # noqa: E402
from metrics.synthetic import blobs, one_colour, uniform_noise  # noqa: E402


def test_split(kind: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(test images, labels, n_levels) of coloured MNIST or the stand-in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in announces itself
        module = ColoredMNISTDataModule() if kind == "coloured MNIST" else SVHNDataModule()
        module.setup()
    return module.test.x.long(), module.test.y, module.n_categories


def quality(images: torch.Tensor, real: torch.Tensor, n_levels: int) -> dict[str, float]:
    metric = SampleQuality(n_levels)
    metric.update(real, real=True)
    metric.update(images)
    return {k: float(v) for k, v in metric.compute().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    reader = digit_reader()
    print("| images | n | recognised | label entropy (bits) | reader accuracy | Fréchet to real |")
    print("|---|---|---|---|---|---|")
    for kind in ("coloured MNIST", "stand-in"):
        x, y, n_levels = test_split(kind)
        x, y = x[: args.n], y[: args.n]
        half = len(x) // 2
        q = quality(x[:half], x[half:], n_levels)
        accuracy = (reader.read(x, n_levels).labels == y).float().mean().item()
        print(
            f"| {kind} test (real) | {len(x)} | {q['recognised']:.1%} | "
            f"{q['label_entropy']:.2f} | {accuracy:.1%} | {q['frechet']:.1f} |"
        )
        generator = torch.Generator().manual_seed(args.seed)
        side = x.shape[-1]
        for name, make in (("noise", uniform_noise), ("blobs", blobs), ("one colour", one_colour)):
            fake = make(args.n, side, n_levels, generator)
            q = quality(fake, x, n_levels)
            print(
                f"| {kind}: {name} | {args.n} | {q['recognised']:.1%} | "
                f"{q['label_entropy']:.2f} | | {q['frechet']:.1f} |"
            )


if __name__ == "__main__":
    main()
