"""Momentum across rounds: each client's (Karimireddy et al. 2021, "Learning from history"; the worker momentum
of Farhadkhani et al. 2022 and Allouah et al. 2023) and the server's (FedAvgM of Hsu et al. 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class ClientMomentum:
    """Each client's momentum m_i <- beta m_i + (1 - beta) u_i over the rounds it takes part in, keyed by its
    client id (not its row in a round); a client's first round starts from m_i = u_i. beta = 0 sends u_i."""

    def __init__(self, beta: float) -> None:
        if not 0 <= beta < 1:
            raise ValueError(f"client_momentum must be in [0, 1), found {beta}")
        self.beta = beta
        self.state: dict[int, np.ndarray] = {}

    def step(self, clients: Sequence[int], updates: np.ndarray) -> np.ndarray:
        """The (len(clients), d) float32 vectors the clients send: row i is client clients[i]'s new momentum
        after its update updates[i] (the rows stay as they are with beta = 0)."""
        if len(clients) != len(updates):
            raise ValueError(f"need one update a client: {len(clients)} clients, found {len(updates)} updates")
        if self.beta == 0:
            return updates
        sent = np.empty_like(updates, dtype=np.float32)
        for i, c in enumerate(int(c) for c in clients):
            old = self.state.get(c)
            sent[i] = updates[i] if old is None else self.beta * old + (1 - self.beta) * updates[i]
            self.state[c] = sent[i].copy()
        return sent


class ServerMomentum:
    """The server step: v <- momentum v + g, params <- params + lr v, from v = 0 (lr = 1, momentum = 0: params + g)."""

    def __init__(self, lr: float = 1.0, momentum: float = 0.0) -> None:
        if not lr > 0 or not 0 <= momentum < 1:
            raise ValueError(f"need server_lr > 0 and server_momentum in [0, 1), found server_lr={lr}, server_momentum={momentum}")
        self.lr, self.momentum = lr, momentum
        self.velocity: np.ndarray | None = None

    def step(self, params: np.ndarray, aggregate: np.ndarray) -> np.ndarray:
        """The new float32 params after the decoded aggregate update `aggregate` (params' units)."""
        self.velocity = aggregate if self.velocity is None or self.momentum == 0 else self.momentum * self.velocity + aggregate
        step = self.velocity if self.lr == 1 else self.lr * self.velocity
        return (params + step).astype(np.float32)
