"""Robust aggregation over values the server cannot read: two-server shares and CKKS, beside the
plaintext rule and a SecAgg+ round on the same inputs.

    python -m benchmarks.robust_secure            # shares: n in {20, 50}, d = 1e5; CKKS: n = 20, d = 1e5 (about 3 min)
    python -m benchmarks.robust_secure --quick    # d = 1e4
    python -m benchmarks.robust_secure --part shares,validation,order,bytes   # only the two-server parts (about 2 min)

Inputs are clipped float updates (norm 1) encoded at 2**16 per unit into Z_2^23 (the largest ring
whose distances stay exact in Z_2^64 at d = 1e5), f = n/5 of them far outliers. Per protocol: CPU
seconds of S0 (or the aggregator), of S1 / the key holder and of the dealer, bytes between the
non-client parties and uploaded per client. Floors: the plaintext rule (`protocols.robust` on the
float32 updates, wall time) and the server of one SecAgg+ round (summing the same encoded inputs).
Then the two-server parts (b = 16, 2**12 a unit): input validation (range and norm) beside the unvalidated
round (S0 CPU and client upload ratios, targets 5x and 3x); coordinate median and trimmed mean over shares
(CPU of all parties, target 30 s at n = 20, d = 1e4) beside the plaintext rule; bytes between the servers
and the dealer for every rule.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.floors import median_wall_seconds
from benchmarks.machine import describe
from protocols import SecAggPlus, secure_sum
from protocols.he.robust import CKKSRobust
from protocols.robust import aggregate
from protocols.two_server import RULES, TwoServerRobust
from secagg.ring import Ring

BITS, SCALE = 23, 2.0**16


def _inputs(n: int, d: int, seed: int = 0, bits: int = BITS, scale: float = SCALE) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1 / np.sqrt(d), (n, d))
    x[: n // 5] = 10 / np.sqrt(d)
    x /= np.maximum(1.0, np.linalg.norm(x, axis=1, keepdims=True))
    ring = Ring(bits)
    return x.astype(np.float32), ring.reduce(np.round(x * scale).astype(np.int64).astype(ring.dtype))


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
        _row("two-server multi_krum (validated)", n, d, cost, plain, secagg_server)
        if ckks_n is not None and n == ckks_n:
            protocol = CKKSRobust(rule="krum", f=f, norm_bound=1.0, min_clients=1)  # Krum releases one input: the key holder must allow it
            protocol.keys  # key generation (with Galois keys) is setup, not part of the round
            cost = secure_sum(floats, protocol=protocol, seed=0).reports[0].cost
            _row("CKKS krum", n, d, cost, median_wall_seconds(lambda: aggregate(floats, f, "krum"), reps), secagg_server)


def _two_server(n: int, d: int, reps: int, **kw):
    """The median-S0 cost of `reps` two-server rounds (b = 16) and the median wall seconds."""
    _, ring = _inputs(n, d, bits=16, scale=2.0**12)
    runs = []
    for r in range(reps):
        start = time.perf_counter()
        cost = secure_sum(ring, protocol=TwoServerRobust(f=n // 5, bits=16, **kw), seed=r).reports[0].cost
        runs.append((cost, time.perf_counter() - start))
    runs.sort(key=lambda run: run[0].server_seconds)
    return runs[len(runs) // 2]


def _cpu(cost, n: int) -> float:
    """CPU seconds of every party of a round: S0, S1, the dealer and the n clients."""
    return cost.server_seconds + sum(cost.party_seconds.values()) + cost.client_seconds_mean * n


def validation(n: int, d: int, reps: int) -> None:
    """Multi-Krum with range and norm validation beside the same round unvalidated (its floor)."""
    plain, _ = _two_server(n, d, reps, rule="multi_krum", validate=False)
    checked, _ = _two_server(n, d, reps, rule="multi_krum", norm_bound=2.0**12 + np.sqrt(d))
    print(f"\nInput validation over shares, n = {n}, d = {d:.0e}, b = 16, norm bound 2^12 + sqrt(d) (median of {reps}):\n")
    print("| round | S0 s | S1 s | dealer s | B up/client | MB S0-S1 | MB dealer |\n|---|---|---|---|---|---|---|")
    for name, c in (("unvalidated (floor)", plain), ("validated", checked)):
        print(f"| {name} | {c.server_seconds:.3f} | {c.party_seconds.get('second server', 0):.3f} | {c.party_seconds.get('dealer', 0):.3f} "
              f"| {c.bytes_up_mean:,.0f} | {_between(c, 'server', 'second server') / 1e6:,.1f} | {_between(c, 'dealer') / 1e6:,.1f} |")
    print(f"\nvalidation: S0 CPU {checked.server_seconds / plain.server_seconds:.1f}x the unvalidated round (target <= 5x), "
          f"client upload {checked.bytes_up_mean / plain.bytes_up_mean:.2f}x (target <= 3x)")


def _between(cost, a: str, b: str | None = None) -> int:
    """Bytes between party a and party b (either direction), or everything party a sent (b None)."""
    return sum(v for k, v in cost.bytes_between.items() if (k.startswith(a + " ->") if b is None else k in (f"{a} -> {b}", f"{b} -> {a}")))


def order_statistics(n: int, ds: list[int], reps: int) -> None:
    """Coordinate median and trimmed mean over shares: CPU of all parties beside the plaintext rule."""
    print(f"\nOrder statistics over shares, n = {n}, f = {n // 5}, b = 16 (median of {reps}); floor: the plaintext rule on float32 (wall)\n")
    print("| rule | d | S0 s | S1 s | dealer s | all parties CPU s | wall s | MB S0-S1 | MB dealer | plaintext s | CPU / plaintext |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for d in ds:
        floats, _ = _inputs(n, d, bits=16, scale=2.0**12)
        for rule in ("coordinate_median", "trimmed_mean"):
            cost, wall = _two_server(n, d, reps, rule=rule)
            plain = median_wall_seconds(lambda: aggregate(floats, n // 5, rule), reps)
            cpu = _cpu(cost, n)
            print(f"| {rule} | {d:.0e} | {cost.server_seconds:.3f} | {cost.party_seconds.get('second server', 0):.3f} | {cost.party_seconds.get('dealer', 0):.3f} "
                  f"| {cpu:.2f} | {wall:.2f} | {_between(cost, 'server', 'second server') / 1e6:,.1f} | {_between(cost, 'dealer') / 1e6:,.1f} "
                  f"| {plain:.4f} | {cpu / plain:,.0f}x |")
    print("\ntarget: coordinate median at n = 20, d = 1e4 within 30 s of CPU, all parties together")


def bytes_by_rule(n: int, d: int) -> None:
    """Bytes between the servers and from the dealer, for every two-server rule (one round, validated)."""
    print(f"\nBytes between the non-client parties, n = {n}, d = {d:.0e}, b = 16, validated:\n")
    print("| rule | MB S0 -> S1 | MB S1 -> S0 | MB dealer -> S0 | MB dealer -> S1 | B up/client |\n|---|---|---|---|---|---|")
    for rule in RULES:
        cost, _ = _two_server(n, d, 1, rule=rule, tau=2.0**10)
        b = cost.bytes_between
        print(f"| {rule} | {b.get('server -> second server', 0) / 1e6:,.2f} | {b.get('second server -> server', 0) / 1e6:,.2f} "
              f"| {b.get('dealer -> server', 0) / 1e6:,.3f} | {b.get('dealer -> second server', 0) / 1e6:,.2f} | {cost.bytes_up_mean:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 1e4")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--part", default="shares,ckks,validation,order,bytes", help="comma-separated: shares, ckks, validation, order, bytes")
    args = parser.parse_args()
    parts = set(args.part.split(","))
    print(describe())
    d = 10_000 if args.quick else 100_000
    if parts & {"shares", "ckks"}:
        shares_and_ckks(d, [20, 50] if "shares" in parts else [20], 20 if "ckks" in parts else None, args.reps)
    if "validation" in parts:
        validation(20, d, args.reps)
    if "order" in parts:
        order_statistics(20, [10_000] if args.quick else [10_000, 100_000], args.reps)
    if "bytes" in parts:
        bytes_by_rule(20, 10_000)


if __name__ == "__main__":
    main()
