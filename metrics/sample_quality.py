"""Sample quality of digit images as torchmetrics Metrics (DDP-safe: states are concatenated or
summed across processes before ``compute``).

All three read images with :func:`metrics.digits.digit_reader` (see there for what "recognised"
means); images are ``LongTensor[B, 3, H, W]`` in {0..n_levels-1}, H = W = 28 or 32.

* :class:`SampleQuality`: of model samples, the fraction recognised as digits, the entropy in bits
  of the recognised labels (log2 10 ≈ 3.32 when all ten digits are equally frequent; 0 when none
  is recognised), and the Fréchet distance between Gaussians fitted to the classifier features of
  the samples and of real images (``update(real_images, real=True)``).
* :class:`ReconstructionAccuracy`: the fraction of reconstructions read as their input's label.
* :class:`ClassAgreement`: per class c, the fraction of images asked to show c that are recognised
  as c (class-conditional samples).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from metrics.digits import DigitReading, digit_reader
from metrics.frechet import features_frechet_distance


def label_entropy_bits(labels: Tensor, n_classes: int = 10) -> float:
    """Entropy in bits of the empirical distribution of ``labels`` (0 for no labels)."""
    if labels.numel() == 0:
        return 0.0
    p = torch.bincount(labels.long(), minlength=n_classes).double() / labels.numel()
    p = p[p > 0]
    return float(-(p * p.log2()).sum())


def _read(images: Tensor, n_levels: int) -> DigitReading:
    return digit_reader(images.device).read(images, n_levels)


def _check_labels(labels: Tensor, n: int, n_classes: int) -> None:
    if labels.shape != (n,) or labels.dtype.is_floating_point:
        raise ValueError(
            f"expected integer labels of shape ({n},), got {labels.dtype} {tuple(labels.shape)}"
        )
    if n and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"labels must lie in 0..{n_classes - 1}, got {int(labels.min())}..{int(labels.max())}"
        )


class SampleQuality(Metric):
    """Recognised fraction, label entropy (bits) and Fréchet distance of digit samples.

    ``update(images)`` adds samples, ``update(images, real=True)`` reference images (e.g. the test
    split). ``compute()`` returns ``{"recognised", "label_entropy", "frechet", "n_samples"}``;
    ``frechet`` is NaN with fewer than two samples or two real images.

    Args:
        n_levels: values per channel of the images (4: coloured MNIST, 256: 8-bit).
    """

    full_state_update = False
    higher_is_better = None

    def __init__(self, n_levels: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_levels = n_levels
        self.add_state("features", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("recognised", default=[], dist_reduce_fx="cat")
        self.add_state("real_features", default=[], dist_reduce_fx="cat")

    def update(self, images: Tensor, real: bool = False) -> None:
        reading = _read(images, self.n_levels)
        if real:
            self.real_features.append(reading.features.float())
            return
        self.features.append(reading.features.float())
        self.labels.append(reading.labels)
        self.recognised.append(reading.recognised)

    def compute(self) -> dict[str, Tensor]:
        features = dim_zero_cat(self.features) if self.features else torch.zeros(0, 1)
        n = features.shape[0]
        if n == 0:
            raise ValueError("SampleQuality.compute() before any update with samples")
        recognised = dim_zero_cat(self.recognised).bool()
        labels = dim_zero_cat(self.labels)[recognised]
        real = dim_zero_cat(self.real_features) if self.real_features else torch.zeros(0, 1)
        frechet = (
            features_frechet_distance(features, real) if n >= 2 and real.shape[0] >= 2 else math.nan
        )
        return {
            "recognised": recognised.float().mean(),
            "label_entropy": torch.tensor(label_entropy_bits(labels)),
            "frechet": torch.tensor(frechet),
            "n_samples": torch.tensor(float(n)),
        }


class ReconstructionAccuracy(Metric):
    """The fraction of reconstructions whose reading's label (argmax digit) is the input's label.

    ``update(reconstructions, labels)`` with ``labels`` ``LongTensor[B]`` in 0..9."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, n_levels: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_levels = n_levels
        self.add_state("correct", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, reconstructions: Tensor, labels: Tensor) -> None:
        _check_labels(labels, reconstructions.shape[0], 10)
        reading = _read(reconstructions, self.n_levels)
        self.correct += (reading.labels == labels.to(reading.labels.device)).sum()
        self.total += labels.numel()

    def compute(self) -> Tensor:
        return self.correct / self.total


class ClassAgreement(Metric):
    """Per class c: the fraction of the images asked to show c that are recognised as c
    (``[n_classes]``; NaN for a class never asked for).

    ``update(images, asked_labels)`` with ``asked_labels`` ``LongTensor[B]`` in 0..n_classes-1."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, n_levels: int, n_classes: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_levels = n_levels
        self.n_classes = n_classes
        self.add_state("agree", default=torch.zeros(n_classes), dist_reduce_fx="sum")
        self.add_state("asked", default=torch.zeros(n_classes), dist_reduce_fx="sum")

    def update(self, images: Tensor, asked_labels: Tensor) -> None:
        _check_labels(asked_labels, images.shape[0], self.n_classes)
        reading = _read(images, self.n_levels)
        asked = asked_labels.to(self.agree.device).long()
        hits = (reading.recognised & (reading.labels == asked.to(reading.labels.device))).float()
        self.agree.index_add_(0, asked, hits.to(self.agree.device))
        self.asked.index_add_(0, asked, torch.ones_like(hits).to(self.agree.device))

    def compute(self) -> Tensor:
        return self.agree / self.asked
