"""The speed ratios of issue 18, each beside its floor (part 4 of `python -m benchmarks.suite`).

    python -m benchmarks.speed_ratios            # full sizes (about 3 min; the default run is 40 rounds)
    python -m benchmarks.speed_ratios --quick    # small sizes (about 40 s)
    python -m benchmarks.speed_ratios --part two-server   # only the two-server rows (about 1.5 min)

- `secagg run` (the embedded default) against the same experiment with stack=plain: wall and CPU seconds of all
  processes (workers included), the CPU seconds of the privacy accountant and the wall seconds of local training,
  and the CPU ratio without the accountant (another issue speeds it up). Quick mode runs 8 rounds of each.
- Two-server Multi-Krum: CPU seconds of server 0 (unvalidated, validated, validated with the preset's norm bound:
  distances in Z_2^44; the validation stages apart) against the plaintext Multi-Krum (CPU seconds, same encoded
  inputs as `benchmarks.robust_secure`) at n = 20 and 50; beside them server 0's floors: its two AES-CTR expansions
  and the one product it needs (the symmetric Gram matrix of X - A_1, `secagg.int_gram`: 3 float64 limb products in
  Z_2^64, a symmetric and a plain one in Z_2^44) against one float32 Gram matrix, and the growth exponent in n.
- Two-server centered clipping, n = 50, d = 1e5 (quick 1e4): S0's CPU seconds with a norm triple (the Gram triple's
  diagonal: the rule reads only the norms) against a Gram triple, and the norm triple's stage against its floor
  (AES-CTR of A_0 and one pass over X - A_1).
- Krum, n = 50, f = 10, d = 1e6 (quick 1e5): CPU seconds and tracemalloc peak against one float32 Gram matrix.
- CKKS Krum, n = 20, d = 1e5 (quick 1e4): the aggregator's and the key holder's CPU seconds, beside the plaintext Krum
  and raw chunked TenSEAL distances.
- SecAgg+ at Flower's parameters (n = 100, k = 14, t = 8, 10% dropout), d = 1e6 (quick 1e5): client masking and
  server unmasking against the AES-CTR keystream of their masks.
CPU seconds are per process (`time.process_time`): run with OMP_NUM_THREADS=1 so that BLAS threads are counted
the same way as the protocols' meters count them (one thread).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.floors import median_cpu_seconds
from benchmarks.he_layers import raw_distance_seconds
from benchmarks.machine import describe
from benchmarks.robust_rules import krum_memory
from benchmarks.robust_secure import BITS, SCALE, _inputs
from benchmarks.secagg_masking import _cell
from protocols import SecAggPlus, secure_sum
from protocols.he.robust import CKKSRobust
from protocols.layers.discretize import rounded_l2_bound
from protocols.robust import aggregate
from protocols.two_server import TwoServerRobust
from secagg import AesCtrPrg, Ring
from secagg.he_distances import all_pairs
from secagg.int_gram import narrow_gram, ring_gram, row_squares


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


def secaggplus_masking(d: int, reps: int, n: int = 100, k: int = 14, t: int = 8, dropout: float = 0.1) -> None:
    """SecAgg+ at Flower's parameters: a client's masked-input stage and the server's unmasking stage (CPU, medians of
    `reps` rounds, `benchmarks.secagg_masking`) beside the AES-CTR keystream of the masks each expands, and the mask adds
    alone (`AesCtrPrg.add_streams` over the same k + 1 masks, without key agreement, share decryption or framing)."""
    cell = _cell("secagg+", n, d, dropout, reps, protocol=SecAggPlus(n, k, t))
    prg, acc = AesCtrPrg(Ring(32)), np.zeros(d, dtype=np.uint32)
    streams = [(bytes([i + 1]) * 32, b"mask", 1) for i in range(k + 1)]
    adds = median_cpu_seconds(lambda: prg.add_streams(acc, streams), reps)
    print("| n | d | k | t | dropout | client mask stage s | mask adds alone s | AES floor s | stage / floor | adds / floor "
          "| server unmask s | AES floor s | unmask / floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    c = cell
    print(f"| {n} | {d:.0e} | {k} | {t} | {dropout:.0%} | {c['client_mask_s']:.4f} | {adds:.4f} | {c['client_floor_s']:.4f} "
          f"| {c['client_ratio']:.2f}x | {adds / c['client_floor_s']:.2f}x | {c['server_unmask_s']:.3f} | {c['server_floor_s']:.3f} "
          f"| {c['server_ratio']:.2f}x |", flush=True)


def ckks_krum(n: int, d: int, f: int | None = None) -> None:
    """CKKS Krum (`CKKSRobust(rule="krum")`, key generation excluded): the aggregator's and the key holder's CPU seconds
    of one round, beside the plaintext Krum and, for the key holder's encrypted distances, raw chunked TenSEAL
    ((a - b).dot(a - b) a chunk, 3 pairs timed and scaled to all pairs)."""
    floats, _ = _inputs(n, d)
    f = n // 5 if f is None else f
    protocol = CKKSRobust(rule="krum", f=f, norm_bound=1.0, min_clients=1)  # Krum releases one input: the key holder must allow it
    keys = protocol.keys  # key generation (with Galois keys) is setup, not part of the round
    cost = secure_sum(floats, protocol=protocol, seed=0).reports[0].cost
    holder = cost.party_seconds.get("key holder", 0.0)
    plain = median_cpu_seconds(lambda: aggregate(floats, f, "krum"), 3)
    vectors = [keys.public.encrypt(row) for row in floats.astype(np.float64)]
    raw = raw_distance_seconds(vectors, all_pairs(n), sample=3)
    print("| n | d | f | aggregator s | key holder s | client s (mean) | plaintext Krum s | raw TenSEAL distances s (all pairs) "
          "| key holder / raw TenSEAL |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {n} | {d:.0e} | {f} | {cost.server_seconds:.3f} | {holder:.3f} | {cost.client_seconds_mean:.3f} | {plain:.4f} | {raw:.1f} "
          f"| {holder / raw:.2f}x |", flush=True)


def two_server_multi_krum(ns: tuple[int, ...], d: int, reps: int) -> None:
    """S0's CPU seconds in a Multi-Krum round against the plaintext rule, at each n: unvalidated, validated (range
    only) and validated with the norm bound the `two-server` preset sets (clip 1 at SCALE, rounded: SCALE + sqrt(d)),
    where the distances are computed in Z_2^44; with S0's seconds in the validation stages (range and norm checks)
    and outside them, and the ring the distances were computed in. Beside them S0's floors inside the round: its
    AES-CTR expansions (X_0 from the clients' seeds and A_0 from the dealer's: 2 n d words), the symmetric Gram
    matrix of P = X - A_1 in Z_2^64 and in Z_2^44 (`secagg.int_gram`), and one float32 Gram matrix; then the
    growth exponent of S0's seconds in n."""
    print("| n | d | validated | distances in | server 0 s | of which validation s | plaintext Multi-Krum s | server 0 / plaintext "
          "| without validation / plaintext | AES-CTR 2 n d words s | Z_2^64 Gram s | Z_2^44 Gram s | float32 Gram s | Z_2^64 / float32 Gram "
          "| floor (AES + Gram) / plaintext, Z_2^64 and Z_2^44 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    configs = (("no", {"validate": False}), ("yes", {"validate": True}), ("yes, norm bound", {"validate": True, "norm_bound": rounded_l2_bound(SCALE, d, 0.0)}))
    seconds = {}
    for n in ns:
        floats, ring = _inputs(n, d)
        f = n // 5
        plain = median_cpu_seconds(lambda: aggregate(floats, f, "multi_krum"), reps)
        p = np.random.default_rng(0).integers(0, 2**64, (n, d), dtype=np.uint64)
        exact = median_cpu_seconds(lambda: ring_gram(p), reps)
        narrow = median_cpu_seconds(lambda: narrow_gram(p), reps)
        gram = median_cpu_seconds(lambda: floats @ floats.T, reps)
        prg, out = AesCtrPrg(Ring(64)), np.empty(n * d, dtype=np.uint64)
        aes = median_cpu_seconds(lambda: [prg.add_into(out, bytes(32), domain) for domain in (b"x", b"a")], reps)
        for label, options in configs:
            protocol = TwoServerRobust(rule="multi_krum", f=f, bits=BITS, **options)
            rounds = [secure_sum(ring, protocol=protocol, seed=r).reports[0] for r in range(reps)]
            costs = [r.cost for r in rounds]
            server0 = float(np.median([c.server_seconds for c in costs]))
            checks = float(np.median([sum(c.server_seconds_by_stage.get(s, 0.0) for s in ("range check", "norm check")) for c in costs]))
            seconds[n, label] = server0
            ring_bits = rounds[0].guarantee.parameters["distance_ring_bits"]
            print(f"| {n} | {d:.0e} | {label} | Z_2^{ring_bits} | {server0:.3f} | {checks:.3f} | {plain:.4f} | {server0 / plain:.1f}x "
                  f"| {(server0 - checks) / plain:.1f}x | {aes:.4f} | {exact:.3f} | {narrow:.3f} | {gram:.4f} | {exact / gram:.1f}x "
                  f"| {(aes + exact) / plain:.1f}x, {(aes + narrow) / plain:.1f}x |", flush=True)
    if len(ns) > 1:
        lo, hi = min(ns), max(ns)
        for label, _ in configs:
            k = np.log(seconds[hi, label] / seconds[lo, label]) / np.log(hi / lo)
            print(f"\nserver 0 validated={label}: seconds grow as n^{k:.2f} from n = {lo} to {hi} "
                  "(the Gram matrix is n^2 d; expansion, masking, parsing and validation are n d)")


class _GramTripleRound(TwoServerRobust):
    """The round as before the norm triple: a Gram triple (m^2 d) where the rule reads only the norms."""

    def _triple(self):
        return "gram" if super()._triple() == "norms" else super()._triple()


def two_server_clipping(n: int, d: int, reps: int) -> None:
    """S0's CPU seconds in a centered-clipping round (one iteration, tau = SCALE: clip 1) with a norm triple (after) and
    with a Gram triple (before), unvalidated and validated with the `two-server` preset's norm bound; with S0's seconds
    in the triple's stage ("norms" or "gram": dealt triple, E opened, S0's share) and S0's floor for the norm triple's
    stage: the AES-CTR expansion of A_0 (n d words: X_0's, expanded in the share stage, counted there) plus one pass
    over P = X - A_1 (`secagg.int_gram.row_squares`); the round's floor adds X_0's expansion (n d words)."""
    print("| n | d | validated | triple | server 0 s | of which the triple's stage s | of which validation s | before / after (server 0) "
          "| before / after (stage) | floor: AES n d words + one pass s | stage / floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    _, ring = _inputs(n, d)
    prg, out = AesCtrPrg(Ring(64)), np.empty(n * d, dtype=np.uint64)
    p = np.random.default_rng(0).integers(0, 2**64, (n, d), dtype=np.uint64)
    floor = median_cpu_seconds(lambda: (prg.add_into(out, bytes(32), b"a"), row_squares(p, p)), reps)
    for label, options in (("no", {"validate": False}), ("yes, norm bound", {"norm_bound": rounded_l2_bound(SCALE, d, 0.0)})):
        measured = {}
        for triple, make in (("gram (before)", _GramTripleRound), ("norms (after)", TwoServerRobust)):
            protocol = make(rule="centered_clipping", f=n // 5, bits=BITS, tau=float(SCALE), **options)
            costs = [secure_sum(ring, protocol=protocol, seed=r).reports[0].cost for r in range(reps)]
            server0 = float(np.median([c.server_seconds for c in costs]))
            stage = float(np.median([c.server_seconds_by_stage.get(triple.split()[0], 0.0) for c in costs]))
            checks = float(np.median([sum(c.server_seconds_by_stage.get(s, 0.0) for s in ("range check", "norm check")) for c in costs]))
            measured[triple] = server0, stage
            before = measured["gram (before)"]
            ratios = "reference | reference" if make is _GramTripleRound else f"{before[0] / server0:.1f}x | {before[1] / stage:.1f}x"
            print(f"| {n} | {d:.0e} | {label} | {triple} | {server0:.3f} | {stage:.4f} | {checks:.3f} | {ratios} | {floor:.4f} "
                  f"| {stage / floor:.1f}x |", flush=True)


def run(quick: bool, reps: int = 3) -> None:
    print("Default experiment vs plain (target: default <= 3x plain, <= 15 s wall on an idle 2-core machine):\n")
    default_run(8 if quick else None)
    print("\nTwo-server Multi-Krum, server 0 vs the plaintext rule (target <= 5x at n = 50, d = 1e5):\n")
    two_server_multi_krum((50,) if quick else (20, 50), 10_000 if quick else 100_000, reps)
    print("\nTwo-server centered clipping, server 0 with a norm triple (after) and a Gram triple (before), n = 50:\n")
    two_server_clipping(50, 10_000 if quick else 100_000, reps)
    print("\nKrum and Multi-Krum without a copy (target: Krum <= 1.5x one Gram matrix, peak <= one input):\n")
    krum_memory(100_000 if quick else 1_000_000, reps)
    print("\nCKKS Krum, n = 20 (target: aggregator <= 3 s at d = 1e5):\n")
    ckks_krum(20, 10_000 if quick else 100_000)
    print("\nSecAgg+ at Flower's parameters n = 100, k = 14, t = 8, 10% dropout (target: <= 1.5x the AES-CTR floors at d = 1e6):\n")
    secaggplus_masking(100_000 if quick else 1_000_000, reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--part", choices=("all", "two-server"), default="all",
                        help="two-server: only the two-server rows (Multi-Krum at n = 20 and 50, centered clipping at n = 50, d = 1e5; about 1.5 min)")
    args = parser.parse_args()
    print(describe())
    if args.part == "two-server":
        two_server_multi_krum((50,) if args.quick else (20, 50), 10_000 if args.quick else 100_000, args.reps)
        print()
        two_server_clipping(50, 10_000 if args.quick else 100_000, args.reps)
    else:
        run(args.quick, args.reps)


if __name__ == "__main__":
    main()
