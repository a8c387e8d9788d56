"""DecLearn's masking SecAgg beside our SecAgg+ client and server, when `declearn` is installed (optional:
`pip install declearn==2.9.1`; it pins scikit-learn and pandas, so a separate environment that sees this one's
packages is the safe place, e.g. a venv whose site-packages holds a .pth file naming this venv's).

    python -m benchmarks.peers [--quick]      # d = 1e6 (quick 1e5), n = 100, k = 14

DecLearn 2.9's `MaskingEncrypter` (Bonawitz et al.'s pairwise masks, no self-mask, no dropout recovery) expands one
numpy PCG64 generator a pairwise seed and adds the masks to the client's values as a list of Python ints; its server
sums those lists pairwise (`MaskedAggregate.aggregate_encrypted`). Measured: a client's `encrypt_uint_list` of d
32-bit values with k seeds (k/2 positive, k/2 negative), and one server addition of two clients' lists (scaled to the
n - 1 additions of a round: stated as such). Ours: the SecAgg+ client's masked-input stage (k + 1 AES-CTR masks, key
agreements, share decryption, framing) and the server's CPU for the masked-input and unmasking stages, from the round's
report (10% dropout, so ours also removes the dropped clients' masks). CPU seconds, one thread.
"""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np

from benchmarks.floors import median_cpu_seconds
from benchmarks.machine import describe
from protocols import DropoutSchedule, SecAggPlus, Stage, secure_sum
from secagg import SeededRandomness


def installed() -> bool:
    return importlib.util.find_spec("declearn") is not None


def declearn_masking(d: int, n: int = 100, k: int = 14, reps: int = 3) -> None:
    from declearn.secagg.masking import MaskingEncrypter
    from declearn.secagg.masking._aggregate import MaskedAggregate

    values = np.random.default_rng(d).integers(0, 2**32, d, dtype=np.uint64).astype(np.uint32)
    as_list = values.tolist()
    rng = np.random.default_rng(0)
    seeds = [int(s) for s in rng.integers(0, 2**63, k)]

    def client():
        return MaskingEncrypter(seeds[: k // 2], seeds[k // 2 :], bitsize=32).encrypt_uint_list(as_list)

    theirs_client = median_cpu_seconds(client, reps)
    a, b = client(), client()
    agg = MaskedAggregate(encrypted=a, enc_specs=[], cleartext=None, agg_cls=object, max_int=2**32, n_aggrg=1)
    theirs_add = median_cpu_seconds(lambda: agg.aggregate_encrypted(a, b), reps)

    inputs = np.random.default_rng(n + d).integers(0, 2**32, size=(n, d), dtype=np.uint64).astype(np.uint32)
    schedule = DropoutSchedule.random(n, 0.1, SeededRandomness(7), stages=(Stage.MASKED_INPUT,))
    costs = [secure_sum(inputs, protocol=SecAggPlus(n, k, 8), dropouts=schedule, seed=r).reports[0].cost for r in range(reps)]
    ours_client = float(np.median([c.client_seconds_by_stage["masked_input"] for c in costs]))
    ours_server = float(np.median([c.server_seconds_by_stage["masked_input"] + c.server_seconds_by_stage["unmasking"] for c in costs]))
    theirs_server = theirs_add * (n - 1)
    print("| n | d | k | client masking s: DecLearn / ours | server s: DecLearn (n - 1 list sums, scaled) / ours (sum + unmasking) |")
    print("|---|---|---|---|---|")
    print(f"| {n} | {d:.0e} | {k} | {theirs_client:.3f} / {ours_client:.4f} ({theirs_client / ours_client:.0f}x) "
          f"| {theirs_server:.2f} / {ours_server:.3f} ({theirs_server / ours_server:.0f}x) |", flush=True)


def run(quick: bool) -> None:
    if not installed():
        print("declearn is not installed (optional: pip install declearn==2.9.1, see benchmarks/peers.py); pfl is not wired in")
        return
    import declearn

    print(f"DecLearn {declearn.__version__} masking SecAgg vs our SecAgg+ (CPU seconds):\n")
    declearn_masking(100_000 if quick else 1_000_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(describe())
    run(args.quick)


if __name__ == "__main__":
    main()
