"""Local training and evaluation: what one client does in a round, on its own data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fl.datasets import Dataset
from fl.models import get_flat, set_flat


@dataclass(frozen=True)
class LocalConfig:
    """FedAvg: `epochs` passes of minibatch SGD at `lr`. FedSGD is epochs=1 with batch_size=None (one
    full-batch gradient step), so the update is -lr times the gradient."""

    epochs: int = 1
    batch_size: int | None = 32
    lr: float = 0.1

    def __post_init__(self) -> None:
        if self.epochs < 1 or (self.batch_size is not None and self.batch_size < 1) or not self.lr > 0:
            raise ValueError(f"need epochs >= 1, batch_size >= 1 or None, lr > 0; found {self.epochs}, {self.batch_size}, {self.lr}")


def local_update(model: nn.Module, params: np.ndarray, data: Dataset, config: LocalConfig, *, seed: int) -> np.ndarray:
    """Trains from the global `params` on `data`; returns the update new - params (float32), the vector a
    client protects and sends. Minibatch order comes from `seed`."""
    if len(data.y) == 0:
        return np.zeros_like(params)
    set_flat(model, params)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    generator = torch.Generator().manual_seed(seed)
    batch = config.batch_size or len(y)
    for _ in range(config.epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch):
            idx = order[start : start + batch]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    return get_flat(model) - params


def evaluate(model: nn.Module, params: np.ndarray, data: Dataset) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of `params` on `data`."""
    set_flat(model, params)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(data.x))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(data.y)).item()
        accuracy = (logits.argmax(dim=1).numpy() == data.y).mean()
    return float(loss), float(accuracy)
