"""The benchmark suite: every layer of every protocol, one row each, beside its floor; scaling curves;
Flower's SecAgg+ side by side when `flwr` is installed.

    python -m benchmarks.suite             # about 15 min on 2 cores
    python -m benchmarks.suite --quick     # under 2 min

Part 1 runs each stack through `secure_sum` (medians of `--reps` rounds, fresh seeds) and prints one row
a layer from its report: client CPU seconds (mean), server seconds, other parties' seconds (key holder,
second server, dealer), bytes up and down per client, rounds, and the floor of that layer with the ratio:
  masks (secagg, secagg+):  client: AES-128-CTR keystream of its k + 1 masks; server: a numpy sum of the
                            n vectors plus the keystream of at most (survivors + k x dropped) masks
  plaintext sum / rule:     a numpy sum of the n vectors / one float32 Gram matrix (BLAS)
  two-server shares:        client: keystream of its 8 d share bytes; servers: one float32 Gram matrix
  CKKS:                     raw TenSEAL doing the same encryptions / parse + adds (CKKS robust: the key holder's
                            distances are in part 4, beside raw TenSEAL's)
  transform layers:         one numpy pass over the client's vector (x + 1.0)
Part 2 (`benchmarks.scaling`) writes scaling CSV and PNGs with fitted exponents; part 3
(`benchmarks.flower_secaggplus`) runs Flower's SecAgg+ beside ours; part 4 (`benchmarks.speed_ratios`)
the default experiment against stack=plain, two-server Multi-Krum against the plaintext rule, Krum's
time and memory against one Gram matrix, CKKS Krum's aggregator and key holder, and SecAgg+ masking at Flower's
parameters against AES-CTR; part 5 (`benchmarks.peers`) DecLearn's masking SecAgg where `declearn` is installed.
CSVs go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import time
from pathlib import Path

import numpy as np

from benchmarks.cases import CASES, Case, float_inputs, protocol_for
from benchmarks.floors import aes_ctr_keystream_seconds, median_wall_seconds, numpy_sum_seconds
from benchmarks.he_layers import raw_tenseal
from benchmarks.machine import describe
from protocols import DropoutSchedule, Stage, secure_sum
from protocols.core.report import LayerReport
from secagg import SeededRandomness

COLUMNS = ["layer", "protocol", "n", "d", "dropout", "client_s", "server_s", "other_s", "bytes_up", "bytes_down", "rounds",
           "floor", "client_floor_s", "server_floor_s", "client_ratio", "server_ratio"]


def run_case(case: Case, n: int, d: int, dropout: float, reps: int) -> list:
    """Median costs over `reps` rounds; returns the reports of the median round (by total server time)."""
    protocol = protocol_for(case, n, d)
    inputs = case.inputs(n, d)
    schedule = DropoutSchedule.random(n, dropout, SeededRandomness(7), stages=(Stage.MASKED_INPUT,))
    outs = []
    for rep in range(reps):
        start = time.perf_counter()
        outs.append(secure_sum(inputs, protocol=protocol, dropouts=schedule, seed=rep))
        if time.perf_counter() - start > 60:
            break
    outs.sort(key=lambda o: sum(r.cost.server_seconds for r in o.reports))
    return list(outs[len(outs) // 2].reports), len(outs[len(outs) // 2].included)


def floors(report: LayerReport, n: int, d: int, survivors: int) -> tuple[str, float, float]:
    """(floor name, client floor s, server floor s) of one layer; NaN where a party does nothing."""
    p, name = report.guarantee.parameters, report.layer
    if name in ("secagg", "secagg+"):
        k = int(p.get("k", n - 1))
        masks = survivors + k * (n - survivors)
        return "AES-CTR keystream", aes_ctr_keystream_seconds((k + 1) * d * 4), numpy_sum_seconds(n, d, np.uint32) + aes_ctr_keystream_seconds(masks * d * 4)
    if name == "plain-sum":
        return "numpy sum", math.nan, numpy_sum_seconds(n, d, np.uint32)
    if name in ("plain-robust", "two-server"):
        x = np.ones((n, d), dtype=np.float32)
        gram = median_wall_seconds(lambda: x @ x.T, 1)
        return "Gram matrix (float32 BLAS)", aes_ctr_keystream_seconds(8 * d) if name == "two-server" else math.nan, gram
    if name in ("ckks", "ckks-robust"):
        protocol = protocol_for(CASES[name], n, d)  # the protocol the case ran (its keys)
        x = float_inputs(n, d).astype(np.float64)
        raw = raw_tenseal(protocol.keys.public.tenseal, protocol.keys.secret.tenseal, x, protocol.params.slots)
        # ckks-robust: the key holder computes the distances, not the aggregator (part 4 sets it beside raw TenSEAL's)
        return "raw TenSEAL (encrypt; parse + add)", raw["client"], raw["server"]
    x = np.ones(d)
    return "numpy pass", median_wall_seconds(lambda: x + 1.0, 1), math.nan


def table(cells: list[tuple[str, int, int, float]], reps: int, out: Path) -> list[dict]:
    rows = []
    print("| layer | protocol | n | d | dropout | client s | server s | other parties s | B up/client | B down/client | rounds | floor | client / floor | server / floor |")
    print("|---" * 14 + "|")
    for name, n, d, dropout in cells:
        reports, survivors = run_case(CASES[name], n, d, dropout, reps)
        for rep in reports:
            c = rep.cost
            floor, cf, sf = floors(rep, n, d, survivors)
            row = {"layer": rep.layer, "protocol": name, "n": n, "d": d, "dropout": dropout, "client_s": c.client_seconds_mean,
                   "server_s": c.server_seconds, "other_s": sum(c.party_seconds.values()), "bytes_up": c.bytes_up_mean,
                   "bytes_down": c.bytes_down_mean, "rounds": c.rounds, "floor": floor, "client_floor_s": cf, "server_floor_s": sf,
                   "client_ratio": c.client_seconds_mean / cf if cf and not math.isnan(cf) else math.nan,
                   "server_ratio": c.server_seconds / sf if sf and not math.isnan(sf) else math.nan}
            rows.append(row)
            ratio = lambda v: "-" if math.isnan(v) else f"{v:.1f}x"  # noqa: E731
            print(f"| {rep.layer} | {name} | {n} | {d:.0e} | {dropout:.0%} | {c.client_seconds_mean:.4f} | {c.server_seconds:.4f} | "
                  f"{sum(c.party_seconds.values()):.4f} | {c.bytes_up_mean:,.0f} | {c.bytes_down_mean:,.0f} | {c.rounds} | {floor} | "
                  f"{ratio(row['client_ratio'])} | {ratio(row['server_ratio'])} |", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


QUICK = [(name, 20, 10_000, 0.1) for name in ("plain", "secagg", "secagg+", "ddp+secagg+", "robust", "two-server", "ckks")] + [("ckks-robust", 10, 1_000, 0.1)]
FULL = ([(name, n, d, 0.1) for n, d in ((100, 10_000), (100, 100_000)) for name in ("plain", "secagg", "secagg+", "ddp+secagg+", "robust", "two-server", "ckks")]
        + [("ckks-robust", 20, 10_000, 0.1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one size a stack, small curves (under 2 min)")
    parser.add_argument("--reps", type=int, default=None, help="rounds a cell (default 3, quick 1)")
    parser.add_argument("--no-flower", action="store_true", help="skip Flower's SecAgg+ even when flwr is installed")
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    results = Path("benchmarks/results")
    print(describe())
    print("\n## Part 1: one row a layer, beside its floor\n")
    table(QUICK if args.quick else FULL, reps, results / ("suite_quick.csv" if args.quick else "suite.csv"))
    from benchmarks import scaling

    print("\n## Part 2: scaling\n")
    scaling.run(quick=args.quick, folder=results)
    if not args.no_flower:
        print("\n## Part 3: Flower's SecAgg+ side by side\n")
        if importlib.util.find_spec("flwr") is None:
            print("flwr is not installed: pip install -e '.[bench-flower]' to run it")
        else:
            from benchmarks import flower_secaggplus

            flower_secaggplus.run(quick=args.quick, folder=results)
    from benchmarks import speed_ratios

    print("\n## Part 4: speed ratios (issue 18), each beside its floor\n")
    speed_ratios.run(quick=args.quick)
    from benchmarks import peers

    print("\n## Part 5: DecLearn's masking SecAgg side by side (optional)\n")
    peers.run(quick=args.quick)


if __name__ == "__main__":
    main()
