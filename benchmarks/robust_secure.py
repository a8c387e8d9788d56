"""Robust aggregation over values the server cannot read: two-server shares and CKKS, beside the
plaintext rule and a SecAgg+ round on the same inputs.

    python -m benchmarks.robust_secure            # shares: n in {20, 50}, d = 1e5; CKKS: n = 20, d = 1e5 (about 3 min)
    python -m benchmarks.robust_secure --quick    # d = 1e4

Inputs are clipped float updates (norm 1) encoded at 2**16 per unit into Z_2^23 (the largest ring
whose distances stay exact in Z_2^64 at d = 1e5), f = n/5 of them far outliers. Per protocol: CPU
seconds of S0 (or the aggregator), of S1 / the key holder and of the dealer, bytes between the
non-client parties and uploaded per client. Floors: the plaintext rule (`protocols.robust` on the
float32 updates, wall time) and the server of one SecAgg+ round (summing the same encoded inputs).
Last, the estimate for coordinate-wise median over shares (not implemented): the measured time of
bit-packed Beaver AND gates in numpy, times the gates a Batcher sorting network needs.
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.floors import median_wall_seconds
from benchmarks.machine import describe
from protocols import SecAggPlus, secure_sum
from protocols.he_robust import CKKSRobust
from protocols.robust import aggregate
from protocols.two_server import TwoServerRobust
from secagg.ring import Ring

BITS, SCALE = 23, 2.0**16


def _inputs(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1 / np.sqrt(d), (n, d))
    x[: n // 5] = 10 / np.sqrt(d)
    x /= np.maximum(1.0, np.linalg.norm(x, axis=1, keepdims=True))
    ring = Ring(BITS)
    return x.astype(np.float32), ring.reduce(np.round(x * SCALE).astype(np.int64).astype(ring.dtype))


def _row(name, n, d, cost, plain, secagg_server):
    other = cost.party_seconds
    between = sum(cost.bytes_between.values())
    server = cost.server_seconds
    print(f"| {name} | {n} | {d:.0e} | {server:.3f} | {other.get('second server', other.get('key holder', 0.0)):.3f} | {other.get('dealer', 0.0):.3f} "
          f"| {between / 1e6:,.1f} | {cost.bytes_up_mean / 1e6:,.2f} | {plain:.4f} | {server / plain:.1f}x | {secagg_server:.3f} | {server / secagg_server:.1f}x |")


def shares_and_ckks(d: int, ns: list[int], ckks_n: int | None, reps: int) -> None:
    print("\n| protocol | n | d | S0 / aggregator s | S1 / key holder s | dealer s | MB between parties | MB up/client "
          "| plaintext rule s | S0 / plaintext | SecAgg+ server s | S0 / SecAgg+ |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in ns:
        floats, ring = _inputs(n, d)
        f = n // 5
        plain = median_wall_seconds(lambda: aggregate(floats, f, "multi_krum"), reps)
        secagg = SecAggPlus.for_clients(n, bits=BITS)
        secagg_server = float(np.median([secure_sum(ring, protocol=secagg, seed=r).reports[0].cost.server_seconds for r in range(reps)]))
        costs = [secure_sum(ring, protocol=TwoServerRobust(rule="multi_krum", f=f, bits=BITS), seed=r).reports[0].cost for r in range(reps)]
        cost = sorted(costs, key=lambda c: c.server_seconds)[len(costs) // 2]
        _row("two-server multi_krum", n, d, cost, plain, secagg_server)
        if n == ckks_n:
            protocol = CKKSRobust(rule="krum", f=f, norm_bound=1.0, min_clients=1)  # Krum releases one input: the key holder must allow it
            protocol.keys  # key generation (with Galois keys) is setup, not part of the round
            cost = secure_sum(floats, protocol=protocol, seed=0).reports[0].cost
            _row("CKKS krum", n, d, cost, median_wall_seconds(lambda: aggregate(floats, f, "krum"), reps), secagg_server)


def median_estimate(n: int, d: int) -> None:
    """Time of packed Beaver AND gates here, scaled to a Batcher network of 64-bit comparisons."""
    words = 1 << 22
    rng = np.random.default_rng(0)
    x, y, a, b, c = (rng.integers(0, 2**63, words, dtype=np.uint64) for _ in range(5))

    def beaver_and():
        e, f = x ^ a, y ^ b  # opened (both servers' halves would be exchanged here)
        return c ^ (e & b) ^ (f & a) ^ (e & f)

    per_gate = median_wall_seconds(beaver_and, 3) / (64 * words)
    p = 1 << max(1, (n - 1).bit_length())
    k = p.bit_length() - 1
    comparators = (k * k - k + 4) * (p >> 2) - 1  # Batcher odd-even merge sort on p = 2**k inputs
    gates = comparators * d * (64 * 6 + 64)  # A2B by a Kogge-Stone adder (~64 log 64 ANDs) + a comparison
    print(f"\nCoordinate-wise median over shares, n = {n} (padded to {p}), d = {d:.0e}: {comparators} comparators a coordinate, "
          f"{gates:.2e} AND gates; at {per_gate * 1e9:.3f} ns a packed gate here: {gates * per_gate:.1f} s of gate evaluation a server, "
          f"{gates * 2 / 8 / 1e9:.1f} GB opened between the servers, {gates * 3 / 8 / 1e9:.1f} GB of bit triples from the dealer, "
          f"and about {k * (k + 1) // 2 * 8} round trips, before the oblivious swaps (one arithmetic triple a comparator and coordinate).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 1e4")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(describe())
    d = 10_000 if args.quick else 100_000
    shares_and_ckks(d, [20, 50], 20, args.reps)
    median_estimate(20, d)


if __name__ == "__main__":
    main()
