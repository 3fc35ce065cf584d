"""Sample quality of digit images: a digit reader trained on the embedded MNIST digits and the
torchmetrics Metrics built on it (recognised fraction, label entropy, Fréchet distance,
reconstruction accuracy, class agreement)."""

from metrics.digits import DigitReader, DigitReading, digit_reader
from metrics.sample_quality import ClassAgreement, ReconstructionAccuracy, SampleQuality

__all__ = [
    "ClassAgreement",
    "DigitReader",
    "DigitReading",
    "ReconstructionAccuracy",
    "SampleQuality",
    "digit_reader",
]
