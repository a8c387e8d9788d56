"""Communication graphs and the SecAgg+ parameter choice (Bell et al., CCS 2020).

SecAgg+ replaces the complete graph of SecAgg by a random k-regular graph: a Harary graph H(k, n)
(position j adjacent to positions j +- 1..k/2 mod n) whose node labels are a pseudorandom
permutation of range(n) keyed by a public graph seed: position j gets the rank of the j-th 64-bit
word of AES-128-CTR under SHA-256(domain, seed) among all n words (ties broken by position). If
AES is a PRF this is a uniform permutation up to total variation n**2 / 2**65 (the chance of a tie),
on every n (the 4-round Feistel network it replaces was distinguishable on small domains: 4-bit
halves at n = 256). A client computes its own k neighbours from the seed with n / 2 AES blocks and
one sort, O(n log n) vectorised work (n = 1000: tens of microseconds), without building the graph.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scipy.special import gammaln

_GRAPH_DOMAIN = b"secagg/graph-permutation/sorted-aes-ctr"


class _SortedPermutation:
    """A pseudorandom permutation of range(n): position j -> the rank of AES-CTR word j (see the module)."""

    def __init__(self, n: int, seed: bytes) -> None:
        key = hashlib.sha256(_GRAPH_DOMAIN + seed).digest()[:16]
        stream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update(bytes(8 * n))
        self._positions = np.argsort(np.frombuffer(stream, dtype="<u8"), kind="stable")  # label -> position
        self._labels = np.empty(n, dtype=np.int64)
        self._labels[self._positions] = np.arange(n)  # position -> label

    def __call__(self, x: np.ndarray, *, inverse: bool = False) -> np.ndarray:
        return (self._positions if inverse else self._labels)[np.asarray(x, dtype=np.int64)]


class HararyGraph:
    """H(k, n) under the pseudorandom relabelling keyed by `seed` (k even, 2 <= k < n; None keeps the
    identity labelling), or the complete graph when k == n - 1 (the seed is then unused).

    Building it costs O(n log n) (the permutation); then `neighbours(i)` O(k) (O(n) on the complete
    graph) and `all()` O(n * k), for the server.
    """

    def __init__(self, n: int, k: int, seed: bytes | None) -> None:
        if k != n - 1 and (k % 2 or not 2 <= k < n):
            raise ValueError(f"k must be even with 2 <= k < n = {n}, or n - 1; found {k}")
        self.n, self.k = n, k
        self.complete = k == n - 1
        self._perm = _SortedPermutation(n, seed) if seed is not None and not self.complete else None
        half = np.arange(1, k // 2 + 1)
        self._offsets = np.concatenate([half, -half])

    def _label(self, positions: np.ndarray, inverse: bool = False) -> np.ndarray:
        return self._perm(positions, inverse=inverse) if self._perm is not None else positions

    def neighbours(self, i: int) -> frozenset[int]:
        """Client i's neighbour set."""
        if not 0 <= i < self.n:
            raise ValueError(f"client id must be in [0, {self.n}), found {i}")
        if self.complete:
            return frozenset(range(self.n)) - {i}
        position = int(self._label(np.array([i]), inverse=True)[0])
        return frozenset(self._label((position + self._offsets) % self.n).tolist())

    def all(self) -> list[frozenset[int]]:
        """Every client's neighbour set, by id."""
        if self.complete:
            everyone = frozenset(range(self.n))
            return [everyone - {i} for i in range(self.n)]
        labels = self._label(np.arange(self.n))
        rows = labels[(np.arange(self.n)[:, None] + self._offsets[None, :]) % self.n]
        out: list[frozenset[int]] = [frozenset()] * self.n
        for label, row in zip(labels.tolist(), rows.tolist()):
            out[label] = frozenset(row)
        return out


def harary_neighbours(n: int, k: int, seed: bytes | None) -> list[frozenset[int]]:
    """Every neighbour set of `HararyGraph(n, k, seed)`: what anyone rebuilds from a round's public graph seed."""
    return HararyGraph(n, k, seed).all()


def binomial_tail(k: int, p: float, m: int) -> float:
    """P[Binomial(k, p) >= m], summed in log space."""
    if m <= 0:
        return 1.0
    if m > k or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    logs = [
        math.lgamma(k + 1) - math.lgamma(j + 1) - math.lgamma(k - j + 1) + j * math.log(p) + (k - j) * math.log1p(-p)
        for j in range(m, k + 1)
    ]
    top = max(logs)
    return math.exp(top) * sum(math.exp(v - top) for v in logs)


def _log_tails(k: int, p: float) -> np.ndarray:
    """log P[Bin(k, p) >= m] for m = 0..k (0 < p < 1), in float64."""
    j = np.arange(k + 1)
    log_pmf = gammaln(k + 1) - gammaln(j + 1) - gammaln(k - j + 1) + j * math.log(p) + (k - j) * math.log1p(-p)
    return np.logaddexp.accumulate(log_pmf[::-1])[::-1]


def corrupt_neighbours_bound(n: int, k: int, corrupt: float, sigma: float) -> int:
    """The largest c such that, with each client corrupt independently with probability `corrupt`,
    no client has more than c corrupt neighbours except with probability 2**-sigma (union bound over
    the n clients): the smallest m with n * P[Bin(k, corrupt) >= m] <= 2**-sigma, minus one."""
    if corrupt <= 0.0:
        return 0
    rare = np.nonzero(math.log(n) + _log_tails(k, corrupt) <= -sigma * math.log(2.0))[0]
    return int(rare[0]) - 1 if len(rare) else k


def claimed_cut_log2(n: int, k: int, t: int, corrupt: float) -> float:
    """log2 of the union bound on an active server cutting H(k, n) by claiming drops (see `colluder_bound`), each
    client corrupt independently with probability `corrupt`: n (n - k) / 2 pairs of disjoint runs of k/2 graph
    positions, each run holding at least t - k/2 corrupt clients: n (n - k)/2 P[Bin(k/2, corrupt) >= t - k/2]**2.
    0 or more means no bound (a cut needs no corrupt client when t <= k/2); -inf on the complete graph (no cut)."""
    if k >= n - 1:
        return -math.inf
    need, pairs = t - k // 2, math.log2(n * (n - k) / 2)
    if need <= 0:
        return max(pairs, 0.0)
    if need > k // 2 or corrupt <= 0.0:
        return -math.inf
    return pairs + 2 * float(_log_tails(k // 2, corrupt)[need]) / math.log(2.0)


def colluder_bound(k: int, t: int, active: bool, sparse: bool = False) -> int:
    """The most corrupt neighbours c_i a client may have for the server (with them) never to hold t
    shares of both its secrets: t - 1 against an honest-but-curious server (t > c_i); against an
    active server, which may send different survivor lists to different neighbours to collect t
    shares of each secret from two sets that overlap only in the corrupt ones, 2t - k - 1
    (t > (k + c_i) / 2, Bell et al.). On a sparse graph (`sparse`: k < n - 1) an active server may
    also claim two runs of k/2 consecutive graph positions dropped: that cuts H(k, n), the clients next
    to a run keep k/2 live neighbours, and t - k/2 corrupt ones in each run give it the self-mask seeds
    it then needs to learn each part's sum (review 15). So there c_i <= t - k/2 - 1 (t > k/2 + c_i)."""
    if active:
        return t - k // 2 - 1 if sparse else 2 * t - k - 1
    return t - 1


def check_threshold(k: int, t: int, active: bool, colluders: int | None = None, sparse: bool = False) -> int:
    """t shares among k neighbours: in [1, k], against an active server in (k/2, k]; with a declared
    number of colluding neighbours, also colluders <= colluder_bound(k, t, active, sparse). Returns t.

    Raises:
        ValueError: naming t (or colluders) and its value when a condition fails.
    """
    low = k // 2 + 1 if active else 1
    if not low <= t <= k:
        raise ValueError(f"t must be in [{low}, {k}] for k={k} neighbours{' against an active server' if active else ''}, found {t}")
    if colluders is not None:
        if colluders < 0:
            raise ValueError(f"colluders must be >= 0, found {colluders}")
        if colluders > colluder_bound(k, t, active, sparse):
            need = ("t > k/2 + colluders (a sparse graph)" if sparse else "t > (k + colluders) / 2") if active else "t > colluders"
            raise ValueError(f"t={t} among k={k} neighbours does not protect against colluders={colluders}: need {need}")
    return t


def choose_degree_and_threshold(
    n: int, dropout: float, corrupt: float, sigma: float, eta: float, *, active: bool = False
) -> tuple[int, int]:
    """Smallest even k (and its smallest t) meeting three conditions, each union-bounded over the n clients.

    Following Bell et al.'s analysis, with neighbours dropping (fraction delta) or corrupt (fraction
    gamma) independently, and c = corrupt_neighbours_bound(n, k, gamma, sigma) the corrupt neighbours
    no client exceeds except with probability 2**-sigma:
      * security of shares: t > c against an honest-but-curious server; against an active server,
        t > (k + c) / 2 (the server lying about who dropped collects t shares of one secret from
        some neighbours and t of the other from the rest; the two sets overlap only in corrupt ones);
      * connectivity: cutting H(k, n) takes two disjoint runs of k/2 consecutive bad nodes, so
        n**2 * (gamma + delta)**k <= 2**-sigma, the dropouts not the server's choice (the server learns no
        partial sum of a component); an active server may also claim any clients dropped, and cuts the graph
        once each run holds t - k/2 corrupt clients, so against it t is raised until `claimed_cut_log2` <=
        -sigma as well (review 15; the natural cut was skipped for it, found by the property test at n = 54,
        gamma = 5/64, no dropout: k = 14, 2**-39.98);
      * correctness: n * P[Bin(k, delta) > k - t] <= 2**-eta (every client keeps t live neighbours).
    When no k < n - 1 works, returns the complete graph (k = n - 1) with the same security condition
    for c = corrupt_neighbours_bound(n, n - 1, gamma, sigma): t = c + 1, or (k + c)//2 + 1 against an
    active server. The correctness target eta is then not enforced (the report's dropout tolerance,
    k - t, states what holds; e.g. n = 30, gamma = 5%, active: k = 29, t = 23, tolerance 6).

    Raises:
        ValueError: if the fractions are outside [0, 1) or n < 3, or naming `corrupt` when even the
            complete graph leaves no t <= n - 1 (e.g. n <= 11 at gamma = 5%: some client has all its
            peers corrupt with probability above 2**-sigma).
    """
    if not (0.0 <= dropout < 1.0 and 0.0 <= corrupt < 1.0 and dropout + corrupt < 1.0):
        raise ValueError(f"need 0 <= dropout, corrupt and dropout + corrupt < 1; found {dropout}, {corrupt}")
    if n < 3:
        raise ValueError(f"secure aggregation needs n >= 3 clients, found {n}")
    bad = 2.0**-sigma
    for k in range(2, n - 1, 2):
        c = corrupt_neighbours_bound(n, k, corrupt, sigma)
        t = (k + c) // 2 + 1 if active else c + 1
        while active and t <= k and claimed_cut_log2(n, k, t, corrupt) > -sigma:
            t += 1
        connected = n * n * (dropout + corrupt) ** k <= bad  # an active server sees natural cuts too (above: its claimed ones)
        if t <= k and connected and (dropout == 0.0 or math.log(n) + _log_tails(k, dropout)[k - t + 1] <= -eta * math.log(2.0)):
            return k, t  # correct: n * P[Bin(k, dropout) > k - t] <= 2**-eta
    k = n - 1
    c = corrupt_neighbours_bound(n, k, corrupt, sigma)
    t = (k + c) // 2 + 1 if active else c + 1
    if t > k:
        raise ValueError(f"corrupt={corrupt} among n={n} clients: up to c={c} corrupt peers except w.p. 2^-{sigma:g}, "
                         f"so no t <= {k} has t > {'(k + c)/2' if active else 'c'}; use SecAgg with a declared number of colluders")
    return k, t
