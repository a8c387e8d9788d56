"""Scaling curves: time and bytes versus n and versus d for every protocol, with the growth exponent
fitted on the largest sizes beside the theoretical one.

    python -m benchmarks.scaling [--quick]      (also part 2 of `python -m benchmarks.suite`)

n-curves at d = 1e3, d-curves at n = 20, 10% of clients dropping after sharing keys. A point is one
round (the suite's table has the medians); its server time is the CPU seconds of every non-client
party summed over the layers of the report (server, second server, dealer, key holder). The fitted
exponent is the least-squares slope of log(y) against log(x) over the three largest sizes (a size whose
round took longer than `LIMIT_S` ends that curve). Writes scaling.csv, scaling_n.png and scaling_d.png
(with a _quick suffix in quick mode) to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.cases import CASES, protocol_for  # noqa: E402
from benchmarks.machine import describe  # noqa: E402
from protocols import DropoutSchedule, Stage, secure_sum  # noqa: E402
from secagg import SeededRandomness  # noqa: E402

LIMIT_S = 40.0
# (protocol, theoretical server exponent in n, in d; client exponent in n), from the protocols' costs:
# plaintext sum O(n d); SecAgg O(n^2 + n d) server, O(n d) client masks; SecAgg+ O(n log n + n d log n)
# server, O(d log n) client; two-server and robust rules O(n^2 d) Gram; CKKS O(n d); CKKS robust O(n^2 d).
THEORY = {
    "plain": ("1", "1", "0"),
    "secagg": ("2 (n^2 keys) + 1", "1", "1"),
    "secagg+": ("1 (x log n)", "1", "0 (log n)"),
    "two-server": ("2 (Gram) + 1", "1", "0"),
    "robust": ("2 (Gram)", "1", "0"),
    "ckks": ("1", "1", "0"),
    "ckks-robust": ("2 (pairs)", "1", "0"),
}
N_GRID = {"full": [10, 30, 100, 300, 1000], "quick": [10, 30, 100]}
N_GRID_OF = {"ckks-robust": {"full": [5, 10, 20, 40], "quick": [4, 8]}}  # all pairs: n^2 encrypted distances
N_MAX = {"secagg": {"full": 300, "quick": 100}}  # n = 1000 would take a million key agreements
D_GRID = {"full": [1_000, 10_000, 100_000, 1_000_000], "quick": [1_000, 10_000, 100_000]}
D_MAX = {"ckks-robust": {"full": 100_000, "quick": 10_000}}


def point(name: str, n: int, d: int) -> dict:
    case = CASES[name]
    protocol = protocol_for(case, n, d)
    schedule = DropoutSchedule.random(n, 0.1, SeededRandomness(7), stages=(Stage.MASKED_INPUT,))
    start = time.perf_counter()
    out = secure_sum(case.inputs(n, d), protocol=protocol, dropouts=schedule, seed=0)
    wall = time.perf_counter() - start
    costs = [r.cost for r in out.reports]
    return {"protocol": name, "n": n, "d": d, "wall_s": wall,
            "server_s": sum(c.server_seconds + sum(c.party_seconds.values()) for c in costs),
            "client_s": sum(c.client_seconds_mean for c in costs), "bytes_up": max(c.bytes_up_mean for c in costs)}


def exponent(xs: list[float], ys: list[float]) -> float:
    """Slope of log y against log x over the three largest x (NaN with fewer than two points)."""
    pts = [(x, y) for x, y in zip(xs, ys) if y > 0][-3:]
    if len(pts) < 2:
        return float("nan")
    return float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])


def curve(name: str, axis: str, mode: str) -> list[dict]:
    points = []
    grid = N_GRID_OF.get(name, N_GRID)[mode] if axis == "n" else D_GRID[mode]
    cap = (N_MAX if axis == "n" else D_MAX).get(name, {}).get(mode, grid[-1])
    for v in grid:
        if v > cap:
            break
        p = point(name, v, 1_000) if axis == "n" else point(name, 20, v)
        points.append(p)
        if p["wall_s"] > LIMIT_S:
            break
    return points


def run(quick: bool, folder: Path) -> list[dict]:
    mode = "quick" if quick else "full"
    tag = "_quick" if quick else ""
    rows, fits = [], []
    for axis in ("n", "d"):
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        for name in THEORY:
            pts = curve(name, axis, mode)
            rows += [{**p, "axis": axis} for p in pts]
            xs = [p[axis] for p in pts]
            fit = {metric: exponent(xs, [p[metric] for p in pts]) for metric in ("server_s", "client_s", "bytes_up")}
            fits.append((name, axis, fit, xs[-1] if xs else None))
            for ax, metric in zip(axes, ("server_s", "client_s", "bytes_up")):
                ax.loglog(xs, [max(p[metric], 1e-7) for p in pts], marker="o", label=f"{name} (slope {fit[metric]:.2f})")
        for ax, metric in zip(axes, ("server CPU s (all non-client parties)", "client CPU s (mean)", "bytes up a client")):
            ax.set_xlabel(axis + (" (d = 1e3)" if axis == "n" else " (n = 20)"))
            ax.set_title(metric)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / f"scaling_{axis}{tag}.png", dpi=110)
        plt.close(fig)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"scaling{tag}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["axis", "protocol", "n", "d", "wall_s", "server_s", "client_s", "bytes_up"])
        writer.writeheader()
        writer.writerows(rows)
    print("| protocol | axis | largest | server exponent (fitted / theory) | client exponent (fitted / theory) | bytes-up exponent |")
    print("|---|---|---|---|---|---|")
    for name, axis, fit, largest in fits:
        s_theory, d_theory, c_theory = THEORY[name]
        print(f"| {name} | {axis} | {largest:,} | {fit['server_s']:.2f} / {s_theory if axis == 'n' else d_theory} | "
              f"{fit['client_s']:.2f} / {c_theory if axis == 'n' else '1'} | {fit['bytes_up']:.2f} |")
    print(f"\nwrote {folder}/scaling{tag}.csv, scaling_n{tag}.png, scaling_d{tag}.png")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(describe())
    run(args.quick, Path("benchmarks/results"))


if __name__ == "__main__":
    main()
