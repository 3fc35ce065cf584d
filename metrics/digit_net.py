"""The digit classifier of the sample-quality metric: a small CNN on 28×28 binary digit masks."""

from __future__ import annotations

from torch import Tensor, nn

#: Size of the feature vector the classifier's last layer reads (and Fréchet distances compare).
FEATURE_DIM = 64
N_DIGITS = 10


class DigitNet(nn.Module):
    """``[B, 1, 28, 28]`` masks in {0, 1} → features ``[B, FEATURE_DIM]`` → logits ``[B, 10]``.

    Four 3×3 convs (16, 32, 64, 64 channels; ReLU; 2×2 max-pooling after the second, third and
    fourth: 28 → 14 → 7 → 3), a linear layer to the features (ReLU), dropout, a linear layer to the
    ten digit logits.
    """

    def __init__(self, dropout: float = 0.3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 3 * 3, FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURE_DIM, N_DIGITS))

    def features(self, masks: Tensor) -> Tensor:
        """The penultimate features ``[B, FEATURE_DIM]`` of masks ``[B, 1, 28, 28]``."""
        return self.body(masks)

    def forward(self, masks: Tensor) -> Tensor:
        """Digit logits ``[B, 10]``."""
        return self.head(self.features(masks))
