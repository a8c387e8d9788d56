"""Local training and evaluation: what one client does in a round, on its own data, and a round's clients
trained side by side in worker processes."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fl.datasets import Dataset
from fl.models import get_flat, set_flat


@dataclass(frozen=True)
class LocalConfig:
    """FedAvg: `epochs` passes of minibatch SGD at `lr`. FedSGD is epochs=1 with batch_size=None (one
    full-batch gradient step), so the update is -lr times the gradient. FedProx (Li et al. 2020) minimises the
    local loss + fedprox_mu / 2 ||w - w_global||^2 instead (0: plain local loss).

    `threads` torch intra-op threads in every process that trains (a small model's step is 20-40x slower
    with torch's default of one thread a core on a busy machine); `workers` processes train a round's
    clients (0: one a core of this machine; 1: one after another in this process). Neither changes a result.
    """

    epochs: int = 1
    batch_size: int | None = 32
    lr: float = 0.1
    fedprox_mu: float = 0.0
    threads: int = 1
    workers: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or (self.batch_size is not None and self.batch_size < 1) or not self.lr > 0:
            raise ValueError(f"need epochs >= 1, batch_size >= 1 or None, lr > 0; found {self.epochs}, {self.batch_size}, {self.lr}")
        if not self.fedprox_mu >= 0:
            raise ValueError(f"fedprox_mu must be >= 0, found {self.fedprox_mu}")
        if self.threads < 1 or self.workers < 0:
            raise ValueError(f"need threads >= 1 and workers >= 0 (0: one a core), found threads={self.threads}, workers={self.workers}")


def local_update(model: nn.Module, params: np.ndarray, data: Dataset, config: LocalConfig, *, seed: int) -> np.ndarray:
    """Trains from the global `params` on `data` (with FedProx's proximal term to `params` when
    config.fedprox_mu > 0); returns the update new - params (float32), the vector a client protects and sends
    (or, with client momentum, folds into what it sends). Minibatch order comes from `seed`."""
    if len(data.y) == 0:
        return np.zeros_like(params)
    set_flat(model, params)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    anchor = [p.detach().clone() for p in model.parameters()]  # w_global, for the proximal term
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    generator = torch.Generator().manual_seed(seed)
    batch = config.batch_size or len(y)
    for _ in range(config.epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch):
            idx = order[start : start + batch]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            if config.fedprox_mu > 0:
                loss = loss + config.fedprox_mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
            loss.backward()
            optimizer.step()
    return get_flat(model) - params


def local_updates(model: nn.Module, params: np.ndarray, datasets: Sequence[Dataset], config: LocalConfig, *,
                  seeds: Sequence[int]) -> np.ndarray:
    """(len(datasets), d) float32 whose row i is `local_update(model, params, datasets[i], config, seed=seeds[i])`.

    Sets this process's torch threads to `config.threads`, then trains in `config.workers` processes (contiguous
    blocks of clients, rows in input order) or here. A row depends only on its inputs and the thread count, which
    every process shares, so the result has the same bits for any number of workers.

    Raises:
        ValueError: if `seeds` and `datasets` differ in length.
    """
    if len(seeds) != len(datasets):
        raise ValueError(f"need one seed a client: {len(datasets)} datasets, found {len(seeds)} seeds")
    torch.set_num_threads(config.threads)
    workers = min(config.workers or _cores(), len(datasets))
    if workers <= 1 or multiprocessing.current_process().daemon:  # a pool's worker (a sweep's) may not have children
        return _train_block(model, params, list(datasets), config, list(seeds))
    blocks = np.array_split(np.arange(len(datasets)), workers)
    # the model travels as plain pickle bytes: torch's multiprocessing pickler would move its parameters to shared
    # memory, and every worker would train the same storage at once
    blob = pickle.dumps(model)
    tasks = [(blob, params, [datasets[i] for i in b], config, [seeds[i] for i in b]) for b in blocks]
    pool = _pool(workers, config.threads)
    try:
        rows = list(pool.map(_train_pickled, *zip(*tasks)))
    except BrokenProcessPool:
        _POOLS.clear()  # a worker died (killed, out of memory): the next call starts a fresh pool
        raise
    return np.concatenate(rows)


def start_workers(config: LocalConfig, clients: int) -> None:
    """Starts, in the background, the worker processes `local_updates` will use for rounds of `clients` clients
    (nothing to start when it would train here), so that their start-up (a fresh interpreter importing torch,
    about 1.4 s) runs beside this process's own set-up instead of before the first round's training."""
    workers = min(config.workers or _cores(), clients)
    if workers <= 1 or multiprocessing.current_process().daemon:
        return
    pool = _pool(workers, config.threads)
    threading.Thread(target=lambda: [pool.submit(_ready) for _ in range(workers)], daemon=True).start()


def _ready() -> None:
    """A worker's first task: nothing (submitting it spawns the worker)."""


def _train_block(model: nn.Module, params: np.ndarray, datasets: list[Dataset], config: LocalConfig, seeds: list[int]) -> np.ndarray:
    rows = [local_update(model, params, data, config, seed=seed) for data, seed in zip(datasets, seeds)]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, len(params)), dtype=np.float32)


def _train_pickled(blob: bytes, params: np.ndarray, datasets: list[Dataset], config: LocalConfig, seeds: list[int]) -> np.ndarray:
    return _train_block(pickle.loads(blob), params, datasets, config, seeds)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_POOLS: dict[tuple[int, int], ProcessPoolExecutor] = {}  # one live pool, reused by every round of every run


def _pool(workers: int, threads: int) -> ProcessPoolExecutor:
    """The pool of `workers` processes with `threads` torch threads each (an earlier pool of another size is shut down).
    Workers fork from a fresh single-threaded server that has imported this module (torch once a process): never
    from this process, which may by then run threads of its own (OpenMP after a parallel region, Ray or gRPC
    after a Flower run), and a fork of a threaded process can hang or die. Workers ignore Ctrl-C, which the
    caller's loop handles."""
    key = (workers, threads)
    if key not in _POOLS:
        for old in _POOLS.values():
            old.shutdown(wait=False, cancel_futures=True)
        _POOLS.clear()
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
        else:
            context = multiprocessing.get_context("spawn")
        _POOLS[key] = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(threads,))
    return _POOLS[key]


def _start_worker(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def evaluate(model: nn.Module, params: np.ndarray, data: Dataset) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of `params` on `data`."""
    set_flat(model, params)
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(data.x))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(data.y)).item()
        accuracy = (logits.argmax(dim=1).numpy() == data.y).mean()
    return float(loss), float(accuracy)
