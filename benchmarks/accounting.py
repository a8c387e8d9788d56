"""Speed of the accountant, beside its floor and beside dp-accounting.

    python -m benchmarks.accounting        # about 20 s

Each figure is the median wall time of cold runs (the curve cache cleared before each), with:
- the floor: one subsampled curve (the 129 x 255 log-sum-exp matrix of the bound) per distinct mechanism
  plus one RDP-to-(epsilon, delta) conversion, measured alone;
- for Gaussian rounds, dp-accounting's RDP accountant on the same events (its default orders).
Targets: 1,000 rounds of subsampled Skellam in < 1 s; 40 subsampled Gaussian rounds <= 3x dp-accounting.
"""

from __future__ import annotations

import dp_accounting
import numpy as np

from benchmarks.floors import median_wall_seconds
from benchmarks.machine import describe
from protocols.accounting import ORDERS, Accountant, Gaussian, Skellam, compose_epsilon, tightest_epsilon, to_epsilon
from protocols.accounting.rdp import _curve, _dp_accounting_logs

DELTA, Q = 1e-5, 0.1


def _cold(fn):
    def run():
        _curve.cache_clear()
        return fn()
    return run


def _floor(distinct: list, reps: int = 5) -> float:
    """One curve per distinct mechanism and one conversion: what any curve-summing accountant must do."""
    def work():
        _curve.cache_clear()
        total = sum(_curve(m, Q, "poisson") for m in distinct)
        to_epsilon(total, DELTA)
    return median_wall_seconds(work, reps)


def _row(name: str, seconds: float, floor: float, target: str) -> None:
    print(f"| {name} | {seconds:.4f} | {floor:.4f} | {seconds / floor:.1f}x | {target} |", flush=True)


def main() -> None:
    print(f"machine: {describe()}\n")
    print("| case | seconds | floor s | ratio | target |\n|---|---|---|---|---|")
    kw = dict(dim=1000, l2_sensitivity=50.0, l1_sensitivity=1500.0)
    same = [Skellam(local_mu=400.0, clients=100, **kw)] * 1000
    _row("1000 rounds of one subsampled Skellam (compose_epsilon)", median_wall_seconds(_cold(lambda: compose_epsilon(same, sampling_rate=Q, delta=DELTA)), 5),
         _floor(same[:1]), "< 1 s")
    varied = [Skellam(local_mu=400.0, clients=70 + (t * 7919) % 31, **kw) for t in range(1000)]  # dropouts: 31 distinct sums
    _row("1000 rounds, 31 distinct Skellam (compose_epsilon)", median_wall_seconds(_cold(lambda: compose_epsilon(varied, sampling_rate=Q, delta=DELTA)), 5),
         _floor(sorted(set(varied), key=lambda m: m.clients)), "< 1 s")

    def per_round():
        acct = Accountant(delta=DELTA, sampling_rate=Q)
        return [acct.compose(m).epsilon for m in varied]
    conversion = median_wall_seconds(lambda: to_epsilon(np.ones(len(ORDERS)), DELTA), 20)
    _row("epsilon after each of 1000 rounds (Accountant)", median_wall_seconds(_cold(per_round), 3),
         _floor(sorted(set(varied), key=lambda m: m.clients)) + 999 * conversion, "-")

    for label, zs in (("40 rounds of one subsampled Gaussian", [1.1] * 40), ("40 subsampled Gaussians, 40 distinct z", list(np.linspace(0.9, 1.3, 40)))):
        mechanisms = [Gaussian(noise_multiplier=float(z)) for z in zs]
        ours = median_wall_seconds(_cold(lambda: compose_epsilon(mechanisms, sampling_rate=Q, delta=DELTA)), 5)

        def reference():
            acct = dp_accounting.rdp.RdpAccountant()
            with _dp_accounting_logs():  # its "failed to converge" warnings, on our logger
                for z in zs:
                    acct.compose(dp_accounting.PoissonSampledDpEvent(Q, dp_accounting.GaussianDpEvent(float(z))))
                return acct.get_epsilon(DELTA)
        ref = median_wall_seconds(reference, 5)
        print(f"| {label}: ours / dp-accounting RDP | {ours:.4f} | {ref:.4f} | {ours / ref:.2f}x | <= 3x |", flush=True)
        eps_rdp, best = compose_epsilon(mechanisms, sampling_rate=Q, delta=DELTA), tightest_epsilon(mechanisms, sampling_rate=Q, delta=DELTA)
        pld_s = median_wall_seconds(lambda: tightest_epsilon(mechanisms, sampling_rate=Q, delta=DELTA), 1)
        print(f"|   epsilon: rdp {eps_rdp:.4f}, dp-accounting rdp {reference():.4f}, tightest {best.value:.4f} ({best.accountant}, {pld_s:.2f} s) | | | | |")


if __name__ == "__main__":
    main()
