"""Small torch models for the bundled data, and their parameters as one flat float32 vector (what a
client sends and the protocols aggregate)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MODELS = ("logreg", "mlp", "cnn")


class SmallCNN(nn.Module):
    """For 8x8 single-channel images (digits): conv 3x3 (8 maps) -> ReLU -> 2x2 max-pool -> linear."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.head = nn.Linear(8 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x.view(-1, 1, 8, 8)))
        return self.head(nn.functional.max_pool2d(x, 2).flatten(1))


def build(name: str, features: int, classes: int, *, hidden: int = 64, seed: int = 0) -> nn.Module:
    """"logreg" (one linear layer), "mlp" (one hidden ReLU layer) or "cnn" (8x8 inputs only), seeded.

    Raises:
        ValueError: for an unknown name, or "cnn" on inputs that are not 64 features.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {MODELS}")
    torch.manual_seed(seed)
    if name == "logreg":
        return nn.Linear(features, classes)
    if name == "mlp":
        return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    if features != 64:
        raise ValueError(f"the cnn expects 8x8 images (64 features), found {features}")
    return SmallCNN(classes)


def get_flat(model: nn.Module) -> np.ndarray:
    """All parameters, concatenated in `model.parameters()` order, as float32."""
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy().astype(np.float32)


def set_flat(model: nn.Module, flat: np.ndarray) -> None:
    """Loads a vector produced by `get_flat` into the model, in place.

    Raises:
        ValueError: if its length differs from the model's parameter count.
    """
    total = sum(p.numel() for p in model.parameters())
    if flat.shape != (total,):
        raise ValueError(f"expected {total} parameters, found shape {flat.shape}")
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(flat[offset : offset + p.numel()], dtype=np.float32)).view_as(p))
            offset += p.numel()
