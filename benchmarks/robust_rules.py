"""Time of each robust rule at n=50, f=10 beside the Gram-matrix floor, and NNM's peak memory.

    python -m benchmarks.robust_rules            # d in {1e4, 1e5, 1e6} (about 2 min)
    python -m benchmarks.robust_rules --quick    # d in {1e4, 1e5}

Updates are float32 Gaussians with f of them replaced by a far outlier. Times are medians of
`--reps` wall-clock runs. The floor is one Gram matrix X X^T of the same updates (what every
distance-based rule needs at least); for coordinate-wise rules a plain mean is printed too.
Peak memory is what tracemalloc sees numpy allocate during one call, beside the n*d*4 bytes of
the input: for Krum and Multi-Krum (no copy of the input: a cache-sized block at a time) and NNM + Krum.
"""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np

from benchmarks.floors import median_cpu_seconds, median_wall_seconds
from benchmarks.machine import describe
from protocols.robust import aggregate

CASES = [
    ("mean", None, {}),
    ("coordinate_median", None, {}),
    ("trimmed_mean", None, {}),
    ("geometric_median", None, {}),
    ("krum", None, {}),
    ("multi_krum", None, {}),
    ("centered_clipping", None, {"tau": 10.0, "iterations": 3}),
    ("krum", "nnm", {}),
    ("trimmed_mean", "nnm", {}),
    ("krum", "bucketing", {}),
]


def krum_memory(d: int, reps: int, n: int = 50, f: int = 10) -> None:
    """Krum and Multi-Krum: median CPU seconds and tracemalloc peak, beside one float32 Gram matrix and the input's size."""
    x = np.random.default_rng(d).normal(size=(n, d)).astype(np.float32)
    x[:f] = 100.0
    gram = median_cpu_seconds(lambda: x @ x.T, reps)
    print("| rule | n | f | d | CPU s | float32 Gram CPU s | ratio | peak traced MiB | input MiB | peak / input |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for rule in ("krum", "multi_krum"):
        seconds = median_cpu_seconds(lambda: aggregate(x, f, rule), reps)
        tracemalloc.start()
        aggregate(x, f, rule)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"| {rule} | {n} | {f} | {d:.0e} | {seconds:.4f} | {gram:.4f} | {seconds / gram:.2f}x | {peak / 2**20:.1f} "
              f"| {x.nbytes / 2**20:.0f} | {peak / x.nbytes:.3f} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    n, f = 50, 10
    print(f"machine: {describe()}\nn={n}, f={f}, float32 updates; seconds are medians of {args.reps} runs\n")
    print("| rule | d | seconds | Gram floor s | ratio | mean s |\n|---|---|---|---|---|---|")
    for d in (10**4, 10**5) if args.quick else (10**4, 10**5, 10**6):
        x = np.random.default_rng(d).normal(size=(n, d)).astype(np.float32)
        x[:f] = 100.0
        gram = median_wall_seconds(lambda: x @ x.T, args.reps)
        plain = median_wall_seconds(lambda: x.mean(axis=0), args.reps)
        for rule, pre, params in CASES:
            pre_params = {"s": 2, "seed": 0} if pre == "bucketing" else None
            seconds = median_wall_seconds(lambda: aggregate(x, f, rule, pre=pre, pre_params=pre_params, **params), args.reps)
            label = rule if pre is None else f"{pre} + {rule}"
            print(f"| {label} | {d:.0e} | {seconds:.4f} | {gram:.4f} | {seconds / gram:.1f}x | {plain:.4f} |", flush=True)
    print()
    krum_memory(10**5 if args.quick else 10**6, args.reps)
    d = 10**5 if args.quick else 10**6
    x = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    tracemalloc.start()
    aggregate(x, f, "krum", pre="nnm")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\nNNM + Krum at n={n}, d={d:.0e}: peak traced memory {peak / 2**20:.0f} MiB for an input of {x.nbytes / 2**20:.0f} MiB "
          f"(an n x (n-f) x d gather would take {n * (n - f) * d * 4 / 2**30:.1f} GiB)")


if __name__ == "__main__":
    main()
