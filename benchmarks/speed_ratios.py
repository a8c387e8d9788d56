"""The speed ratios of issue 18, each beside its floor (part 4 of `python -m benchmarks.suite`).

    python -m benchmarks.speed_ratios            # full sizes (about 3 min; the default run is 40 rounds)
    python -m benchmarks.speed_ratios --quick    # small sizes (about 40 s)

- `secagg run` (the embedded default) against the same experiment with stack=plain: wall and CPU seconds of all
  processes (workers included), the CPU seconds of the privacy accountant and the wall seconds of local training,
  and the CPU ratio without the accountant (another issue speeds it up). Quick mode runs 8 rounds of each.
- Two-server Multi-Krum: CPU seconds of server 0 against the plaintext Multi-Krum (CPU seconds, same encoded
  inputs as `benchmarks.robust_secure`); beside them, the exact Z_2^64 Gram products server 0 needs (E A_0^T
  and E E^T, `secagg.int_gram`) against numpy's integer einsum and one float32 Gram matrix.
- Krum, n = 50, f = 10, d = 1e6 (quick 1e5): seconds and tracemalloc peak against one float32 Gram matrix.
CPU seconds are per process (`time.process_time`): run with OMP_NUM_THREADS=1 so that BLAS threads are counted
the same way as the protocols' meters count them (one thread).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.machine import describe
from benchmarks.robust_rules import krum_memory
from benchmarks.robust_secure import BITS, _inputs
from protocols import secure_sum
from protocols.robust import aggregate
from protocols.two_server import TwoServerRobust
from secagg.int_gram import ring_gram


def median_cpu_seconds(fn, reps: int) -> float:
    """Median process CPU seconds of `reps` calls of `fn()`."""
    return float(np.median([_cpu_seconds(fn) for _ in range(reps)]))


def _cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc; 0 elsewhere). The training pool's workers are
    children of multiprocessing's fork server, not of this process, so `os.times()` never counts them."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15 of stat)


def default_run(rounds: int | None) -> None:
    """The default experiment against stack=plain, with the accountant's and local training's share."""
    import fl.experiment as experiment
    from fl import training
    from fl.run_commands import build_config

    spent = {}

    def timed(name, fn, clock):
        def wrapper(*args, **kwargs):
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + clock() - start
        return wrapper

    originals = experiment._epsilon_by_observer, experiment.local_updates
    experiment._epsilon_by_observer = timed("accounting", originals[0], time.process_time)  # this process alone runs it
    experiment.local_updates = timed("training", originals[1], time.perf_counter)  # workers' CPU is not this process's
    print("| experiment | rounds | wall s | CPU s (all processes) | accountant CPU s | local training wall s | wall / plain | CPU / plain "
          "| CPU without the accountant / plain |")
    print("|---|---|---|---|---|---|---|---|---|")
    try:
        plain = None
        for label, overrides in (("stack=plain", ["stack=plain"]), ("default (ddp+secagg+)", [])):
            config = build_config(None, overrides + ([f"rounds={rounds}"] if rounds else []))
            spent.clear()
            before, start = os.times(), time.perf_counter()
            experiment.run_experiment(config)
            wall = time.perf_counter() - start
            workers = sum(_process_cpu_seconds(pid) for pool in training._POOLS.values() for pid in pool._processes)
            for pool in training._POOLS.values():  # a fresh pool for the next run, so that its workers' CPU is its own
                pool.shutdown(wait=True)
            training._POOLS.clear()
            after = os.times()
            cpu = sum(after[i] - before[i] for i in range(4)) + workers  # this process (and children it reaped) + the pool's workers
            plain = plain or (wall, cpu)
            accounting, training_wall = spent.get("accounting", 0.0), spent.get("training", 0.0)
            print(f"| {label} | {config.rounds} | {wall:.1f} | {cpu:.1f} | {accounting:.1f} | {training_wall:.1f} | {wall / plain[0]:.1f}x "
                  f"| {cpu / plain[1]:.1f}x | {(cpu - accounting) / plain[1]:.1f}x |", flush=True)
    finally:
        experiment._epsilon_by_observer, experiment.local_updates = originals


def two_server_multi_krum(n: int, d: int, reps: int) -> None:
    floats, ring = _inputs(n, d)
    f = n // 5
    plain = median_cpu_seconds(lambda: aggregate(floats, f, "multi_krum"), reps)
    costs = [secure_sum(ring, protocol=TwoServerRobust(rule="multi_krum", f=f, bits=BITS), seed=r).reports[0].cost for r in range(reps)]
    server0 = float(np.median([c.server_seconds for c in costs]))
    rng = np.random.default_rng(0)
    e, a = (rng.integers(0, 2**64, (n, d), dtype=np.uint64) for _ in range(2))
    blas = median_cpu_seconds(lambda: (ring_gram(e, a), ring_gram(e)), reps)
    einsum = median_cpu_seconds(lambda: (np.einsum("ik,jk->ij", e, a), np.einsum("ik,jk->ij", e, e)), reps)
    x = np.ones((n, d), dtype=np.float32)
    gram = median_cpu_seconds(lambda: x @ x.T, reps)
    print("| n | d | server 0 s | plaintext Multi-Krum s | server 0 / plaintext | Z_2^64 Grams (limbs, BLAS) s | same with einsum s "
          "| float32 Gram s | limbs / float32 Gram |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {n} | {d:.0e} | {server0:.3f} | {plain:.4f} | {server0 / plain:.1f}x | {blas:.3f} | {einsum:.3f} | {gram:.4f} "
          f"| {blas / gram:.1f}x |")


def run(quick: bool, reps: int = 3) -> None:
    print("Default experiment vs plain (target: default <= 3x plain, <= 15 s wall on an idle 2-core machine):\n")
    default_run(8 if quick else None)
    print("\nTwo-server Multi-Krum, server 0 vs the plaintext rule (target <= 5x at n = 50, d = 1e5):\n")
    two_server_multi_krum(50, 10_000 if quick else 100_000, reps)
    print("\nKrum and Multi-Krum without a copy (target: Krum <= 1.5x one Gram matrix, peak <= one input):\n")
    krum_memory(100_000 if quick else 1_000_000, reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(describe())
    run(args.quick, args.reps)


if __name__ == "__main__":
    main()
