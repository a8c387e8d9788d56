"""Homomorphic-encryption aggregation: the cost of each party beside raw TenSEAL doing the same work.

    python -m benchmarks.he_layers            # d in {1e4, 1e5}, n in {10, 50}; distances at n = 20 (about 4 min)
    python -m benchmarks.he_layers --quick    # d = 1e4 only (about 1 min)

Part 1 runs `secure_sum(x, protocol=CKKSAggregation(recompute=False))` (preset ckks-8192-sum) and a BFV
row, and prints per party the CPU seconds from the report: client (encrypt, serialize, sign), aggregator
(verify signatures, parse, add), key holder (check the manifest, parse, decrypt, flood), bytes up per
client and the expansion over float32, and beside each the floor: raw TenSEAL doing only the
cryptographic part (`ckks_vector` + `serialize` per chunk; `ckks_vector_from` + `add_`; `decrypt`).
Part 2 computes all 190 encrypted squared distances between n = 20 clients with `secagg.he_distances`
(preset ckks-8192) beside raw chunked TenSEAL: sum over chunks of `(a - b).dot(a - b)` with automatic
relinearization, timed on 10 pairs and scaled to 190. Medians of `--reps` repetitions; CPU seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np
import tenseal as ts
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks.machine import describe
from protocols import secure_sum
from protocols.he.aggregation import BFVAggregation, CKKSAggregation
from secagg.he import HeContext
from secagg.he_distances import all_pairs, pairwise
from secagg.he_params import preset


def _cpu(fn) -> float:
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def raw_tenseal(ctx: ts.Context, secret: ts.Context, x: np.ndarray, slots: int) -> dict[str, float]:
    """CPU seconds of raw TenSEAL: one client's encrypt + serialize, the aggregator's parse + add of n, decrypt.

    "... + crypto" adds what the protocol does beyond TenSEAL, with `cryptography` alone: the client signs
    the SHA-256 of its ciphertext; the aggregator hashes and verifies each input and serializes the sum for
    the key holder; the key holder verifies the n signatures (on the digests the manifest carries) and parses the sum."""
    n, d = x.shape
    chunks = [[x[i, k : k + slots].tolist() for k in range(0, d, slots)] for i in range(n)]
    wire: list[list[bytes]] = []
    enc = _cpu(lambda: wire.extend([[ts.ckks_vector(ctx, c).serialize() for c in rows] for rows in chunks])) / n
    signer = Ed25519PrivateKey.generate()
    public = signer.public_key()
    blobs = [b"".join(rows) for rows in wire]
    sigs = [signer.sign(hashlib.sha256(b).digest()) for b in blobs]
    sign = _cpu(lambda: [signer.sign(hashlib.sha256(b).digest()) for b in blobs]) / n
    acc: list = []

    def aggregate():
        acc.extend(ts.ckks_vector_from(ctx, b) for b in wire[0])
        for rows in wire[1:]:
            for a, b in zip(acc, rows):
                a.add_(ts.ckks_vector_from(ctx, b))

    agg = _cpu(aggregate)
    out: list[bytes] = []
    check = _cpu(lambda: [public.verify(s, hashlib.sha256(b).digest()) for s, b in zip(sigs, blobs)])
    ship = _cpu(lambda: out.extend(a.serialize() for a in acc))
    key = secret.secret_key()
    dec = _cpu(lambda: [a.decrypt(secret_key=key) for a in acc])
    parse = _cpu(lambda: [ts.ckks_vector_from(ctx, b) for b in out])
    digests = [hashlib.sha256(b).digest() for b in blobs]
    holder_check = _cpu(lambda: [public.verify(s, h) for s, h in zip(sigs, digests)])  # the manifest carries the digests
    return {"client": enc, "client+": enc + sign, "server": agg, "server+": agg + check + ship,
            "key holder": dec, "key holder+": dec + parse + holder_check, "bytes": sum(len(b) for b in wire[0])}


def raw_distance_seconds(vectors: list, pairs: list[tuple[int, int]], sample: int) -> float:
    """CPU seconds raw chunked TenSEAL needs for all `pairs`: sum over chunks of (a - b).dot(a - b), with
    TenSEAL's automatic relinearization, timed on the first `sample` pairs and scaled."""

    def raw():
        for i, j in pairs[:sample]:
            total = None
            for a, b in zip(vectors[i].chunks, vectors[j].chunks):
                diff = a - b
                v = diff.dot(diff)
                total = v if total is None else total + v

    return _cpu(raw) * len(pairs) / min(sample, len(pairs))


def part1(dims: list[int], ns: list[int], reps: int) -> None:
    print("\n## Part 1: one aggregation round (CPU seconds; floor = raw TenSEAL, same chunks)\n")
    print("| scheme | n | d | client s (TenSEAL floor / + crypto) | aggregator s (floor / + crypto) | key holder s (floor / + crypto) "
          "| up B/client | expansion vs f32 | ours / (floor + crypto): client, aggregator, key holder |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    ckks = CKKSAggregation(recompute=False)
    params = ckks.params
    for d in dims:
        for n in ns:
            x = rng.normal(0, 0.01, (n, d)).astype(np.float32)
            runs = [secure_sum(x, protocol=ckks, seed=r).reports[0].cost for r in range(reps)]
            floors = [raw_tenseal(ckks.keys.public.tenseal, ckks.keys.secret.tenseal, x.astype(np.float64), params.slots) for _ in range(reps)]
            med = lambda key: float(np.median([getattr(c, key) for c in runs]))  # noqa: E731
            holder = float(np.median([c.party_seconds["key holder"] for c in runs]))
            fl = {k: float(np.median([f[k] for f in floors])) for k in floors[0]}
            up = med("bytes_up_mean")
            client, server = med("client_seconds_mean"), med("server_seconds")
            print(f"| ckks | {n} | {d:.0e} | {client:.4f} ({fl['client']:.4f} / {fl['client+']:.4f}) | {server:.4f} ({fl['server']:.4f} / {fl['server+']:.4f}) "
                  f"| {holder:.4f} ({fl['key holder']:.4f} / {fl['key holder+']:.4f}) | {up:,.0f} | {up / (4 * d):.1f} "
                  f"| {client / fl['client+']:.2f}, {server / fl['server+']:.2f}, {holder / fl['key holder+']:.2f} |")
    bfv = BFVAggregation(bits=16, recompute=False)
    d = dims[-1]
    cost = secure_sum(rng.integers(0, 2**16, (10, d)).astype(np.uint16), protocol=bfv, seed=0).reports[0].cost
    print(f"| bfv (16-bit ring) | 10 | {d:.0e} | {cost.client_seconds_mean:.4f} | {cost.server_seconds:.4f} | {cost.party_seconds['key holder']:.4f} "
          f"| {cost.bytes_up_mean:,.0f} | {cost.bytes_up_mean / (4 * d):.1f} | - |")
    sizes = ckks.keys.secret.key_bytes()
    print(f"\nckks-8192-sum keys: public {sizes['public']:,} B, relinearization {sizes['relin']:,} B; "
          f"public context sent to clients {ckks.keys.public_bytes:,} B")


def part2(d: int, n: int = 20) -> None:
    print(f"\n## Part 2: encrypted squared distances, n = {n}, d = {d:.0e}, preset ckks-8192 (CPU seconds)\n")
    context = HeContext.generate(preset("ckks-8192"), galois=True)
    public = context.public()
    x = np.random.default_rng(1).normal(0, 0.01, (n, d))
    vectors = [public.encrypt(row) for row in x]
    pairs = all_pairs(n)
    ours = _cpu(lambda: pairwise(public, vectors, pairs))
    floor = raw_distance_seconds(vectors, pairs, sample=10)
    sizes = context.key_bytes()
    print("| pairs | ours s | raw chunked TenSEAL s (10 pairs, scaled) | ratio | Galois keys B |")
    print("|---|---|---|---|---|")
    print(f"| {len(pairs)} | {ours:.2f} | {floor:.2f} | {ours / floor:.2f} | {sizes['galois']:,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 1e4 only")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(describe() + f", TenSEAL {ts.__version__}")
    dims = [10_000] if args.quick else [10_000, 100_000]
    part1(dims, [10, 50], args.reps)
    part2(dims[-1])


if __name__ == "__main__":
    main()
