"""Review 6: adversarial tests of the two-server norm triple (`secagg.norm_triple`, `TwoServerRobust._triple`, the dealer
kind "norms" sealed under Kind.NORM_TRIPLE, the split rounds' placeholders). Written by a reviewer who did not write the
code; each test is an attack, plain if it holds today (a regression), `xfail(strict=True)` naming the break if it succeeds.

1. A Byzantine client choosing its own shares (X anywhere in Z_2^64, digits of something else, slack of a claimed norm)
   passes exactly when X is in the signed range and ||X||^2 <= B in the integers; with validate=False the report says so.
2. S1's share of the norms c_1 + 2 <e, a_1> gives S1 nothing: without the seed's c_0 it would give <x, a_1>, hence x.
3. S0 active: a Gram batch for a norm batch and back at m = 1 (d = 1: both batches are two (1, 1) matrices), a request of
   other shapes, a relayed batch truncated, extended, flipped or relabelled; a dealer endpoint sending a malformed part;
   a remote S1 of another configuration: each fails closed with a typed error.
4. Split rounds (each server its own share, the other's a zeros placeholder): the same outputs as in process, and no
   frame either server sends carries an all-zero placeholder.
5. The report: `triple_elements` is what the dealer dealt, and the meter counts the norm stage's parties.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocols.byzantine_shares import BYZANTINE_SHARE_MODES
from protocols.core.errors import Aborted, InvalidInput, MalformedMessage, ProtocolError
from protocols.core.messages import Kind
from protocols.core.secure_sum import secure_sum
from protocols.core.wire import DEALER, HEADER_BYTES, SECOND_SERVER, SERVER, Frame, Reader, decode_frame, encode_frame
from protocols.testing import ByzantineShares
from protocols.two_server import TwoServerRobust
from protocols.two_server.channel import encode_matrix, read_matrix
from secagg.agreement import X25519Agreement
from secagg.beaver import expand_share
from secagg.bit_sharing import offset, share_planes, to_planes
from secagg.norm_triple import NORMS_A, NORMS_C, NormTriple, SeededNormTriple, deal_norms, norm_share
from secagg.randomness import SeededRandomness, SystemRandomness
from secagg.ring import Ring
from tests.protocols.split_round import replacing, split_round
from tests.protocols.test_two_server_review import ShareRewriter

TAG = 32  # the link tag the transport appends
NORM_RULES = ("centered_clipping", "norm_bounding", "coordinate_median", "trimmed_mean")


def _ring(x, bits: int) -> np.ndarray:
    ring = Ring(bits)
    return ring.reduce(np.asarray(x, dtype=np.int64).astype(np.uint64).astype(ring.dtype))


def _signed(v: int) -> int:
    return v - 2**64 if v >= 2**63 else v


def _bound_at_least(b: int) -> float:
    """The least float norm bound whose squared_bound is >= b (exactly b below 2**48, where floats are dense enough)."""
    nb = math.sqrt(b)
    while TwoServerRobust(norm_bound=nb).squared_bound < b:
        nb = float(np.nextafter(nb, math.inf))
    while nb > 0 and TwoServerRobust(norm_bound=float(np.nextafter(nb, 0))).squared_bound >= b:
        nb = float(np.nextafter(nb, 0))
    assert b >= 2**48 or TwoServerRobust(norm_bound=nb).squared_bound == b
    return nb


def _same(a, b) -> None:
    assert np.array_equal(a.result, b.result) and a.included == b.included and a.weights == b.weights
    assert [(type(e), e.party, e.stage) for e in a.rejected] == [(type(e), e.party, e.stage) for e in b.rejected]
    assert a.reports[0].guarantee.numeric_error == b.reports[0].guarantee.numeric_error
    assert a.reports[0].guarantee.parameters == b.reports[0].guarantee.parameters


class Liar(ShareRewriter):
    """A Byzantine client (a `tamper` hook) whose shares stand for `target` (uint64, any value in Z_2^64), with the range
    digits of `digits_of` and the slack digits of (B - `claimed`) mod 2^64 (the low L bits the protocol reads)."""

    def __init__(self, client: int, target: np.ndarray, digits_of: np.ndarray, claimed: int, protocol: TwoServerRobust):
        super().__init__(client, self._shares)
        self.target, self.digits_of, self.claimed, self.p = target, digits_of, claimed, protocol

    def _shares(self, x0: np.ndarray, parts: list, seed: bytes) -> list[np.ndarray]:
        bits = self.p.bits
        out = [(self.target - x0)[None, :]]
        if self.p.validate:
            out.append(share_planes(to_planes(offset(self.digits_of, bits), bits), seed, b"input digits"))
        if self.p._slack_bits() is not None:
            s = np.array([(self.p.squared_bound - self.claimed) % 2**64], dtype=np.uint64)
            out.append(share_planes(to_planes(s, self.p._slack_bits()), seed, b"norm slack digits"))
        return out


def _coordinate(bits: int):
    """One coordinate an attacker picks: (X_j, the value its digits are of), both uint64."""
    top = 1 << (bits - 1)
    inside = st.integers(-top, top - 1)
    wrap = st.tuples(st.integers(bits, 63), st.sampled_from([-1, 1]))

    return st.one_of(
        inside.map(lambda v: (v, v)),  # honest-looking
        st.sampled_from([top, -top - 1, top + 1, 2 * top]).map(lambda v: (v, v)),  # just outside the range, digits of it
        st.tuples(inside, wrap).map(lambda t: (t[0] + t[1][1] * (1 << t[1][0]), t[0])),  # X_j = p_j + -2^k, digits of p_j
        st.tuples(inside, wrap).map(lambda t: (t[0] + t[1][1] * (1 << t[1][0]), t[0] + t[1][1] * (1 << t[1][0]))),
    ).map(lambda p: (p[0] % 2**64, p[1] % 2**64))


@st.composite
def _attack(draw):
    rule, pre = draw(st.sampled_from([(r, None) for r in NORM_RULES + ("krum", "multi_krum")]
                                     + [(r, "nnm") for r in ("centered_clipping", "norm_bounding", "multi_krum")]))
    bits = draw(st.integers(4, 24))
    d = draw(st.integers(1, 5))
    n = draw(st.integers(3, 5))
    coords = [draw(_coordinate(bits)) for _ in range(d)]
    target = np.array([c[0] for c in coords], dtype=np.uint64)
    digits_of = np.array([c[1] for c in coords], dtype=np.uint64)
    true = sum(_signed(int(v)) ** 2 for v in target)  # ||X||^2 in the integers
    claim = draw(st.sampled_from(["true", "mod 2^64", "mod 2^44", "mod 2^L", "B", "digits'"]))
    where = draw(st.sampled_from(["edge", "above", "below", "random"]))  # B at ||X||^2, one above or below, anywhere
    return (rule, pre), bits, d, n, target, digits_of, true, claim, draw(st.integers(0, 2**16)), where


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_attack())
def test_a_client_choosing_its_shares_passes_iff_in_range_and_its_integer_norm_is_at_most_b(attack):
    """The attack of item 1 with every choice at once, over the norm triple's rules and, for comparison, the Gram
    triple's (Krum rules, NNM; their distances narrow to Z_2^44 where the bound allows): X anywhere in Z_2^64 (wrapping
    2^k terms for k in [b, 63], just outside the range), digits of X or of its in-range residue, slack digits of a
    claimed norm (the true one, its residue mod 2^64, 2^44 or 2^L, B, the digits' norm). It is included iff X is in the
    signed b-bit range, its digits are X's and B - ||X||^2 (integers) is what its slack digits say; then the round
    equals an honest round with X as its input."""
    (rule, pre), bits, d, n, target, digits_of, true, claim, seed, where = attack
    rng = np.random.default_rng(seed)
    top = 1 << (bits - 1)
    honest = rng.integers(-top, top, (n, d)) // (n if rule in ("coordinate_median", "trimmed_mean") else 1)
    honest_max = max(int(r @ r) for r in honest)
    target_in_range = all(-top <= _signed(int(v)) < top for v in target)
    b = {"edge": true, "above": true + 1, "below": true - 1, "random": int(rng.integers(0, d << (2 * bits - 2)) + 1)}[where]
    b = min(max(b, honest_max, 0), (1 << 62))  # honest clients pass; B < 2^63 (norm_bound < 2^31.5)
    protocol = TwoServerRobust(rule=rule, f=int(rng.integers(0, (n - 2) // 2 + 1)), bits=bits, norm_bound=_bound_at_least(b),
                               tau=float(math.isqrt(b) + 1), pre=pre)
    b = protocol.squared_bound
    event(f"triple {protocol._triple()}")
    claimed = {"true": true, "mod 2^64": true % 2**64, "mod 2^44": true % 2**44, "mod 2^L": true % 2 ** protocol._slack_bits(),
               "B": b, "digits'": sum(_signed(int(v)) ** 2 for v in digits_of)}[claim]
    attacker = n - 1
    liar = Liar(attacker, target, digits_of, claimed, protocol)
    x = _ring(honest, bits)
    out = secure_sum(x, protocol=protocol, seed=seed, tamper=liar.tamper)
    slack_ok = 0 <= b - true < 2 ** protocol._slack_bits() and (b - claimed) % 2 ** protocol._slack_bits() == b - true
    passes = target_in_range and np.array_equal(target, digits_of) and true <= b and slack_ok
    event(f"passes={passes}")
    rejected = {e.party: (type(e), e.stage) for e in out.rejected}
    assert all(f"client {u}" not in rejected for u in range(attacker))
    assert (f"client {attacker}" not in rejected) == passes
    if passes:
        x[attacker] = _ring([_signed(int(v)) for v in target], bits)
        _same(out, secure_sum(x, protocol=protocol, seed=seed))
    else:
        assert rejected[f"client {attacker}"][0] is InvalidInput
        digits_ok = target_in_range and np.array_equal(target, digits_of)
        assert rejected[f"client {attacker}"][1] == ("norm check" if digits_ok else "range check")


@pytest.mark.parametrize("rule", ["centered_clipping", "norm_bounding"])
def test_without_validation_a_norm_bound_is_not_enforced_and_the_report_says_so(rule):
    """validate=False with a norm bound: no slack is sent and no norm is checked, so a client over B (here an honest
    one, 100x the bound) is not rejected. The guarantee must not claim the bound: "NOT validated", no squared_norm_bound."""
    x = np.random.default_rng(2).integers(-10, 10, (4, 3))
    x[0] = 900
    protocol = TwoServerRobust(rule=rule, f=1, bits=12, norm_bound=15.0, validate=False, tau=20.0)
    out = secure_sum(_ring(x, 12), protocol=protocol, seed=1)
    g = out.reports[0].guarantee
    assert not out.rejected and 0 in out.included
    assert g.parameters["triple"] == "norms" and "squared_norm_bound" not in g.parameters
    assert g.notes.startswith("NOT validated")


def _s1_recovers_x(t1: NormTriple, g1: np.ndarray) -> np.ndarray | None:
    """S1's attack at d = 1 on its own norm share g1 = c_1 + 2 e a_1: if c_1 = ||a||^2 - ||a_0||^2 (no c_0), then
    g1 + a_1^2 = 2 x a_1, and for odd a_1 x = ((g1 + a_1^2) / 2) a_1^-1 mod 2^63."""
    a1 = int(t1.a[0, 0])
    if a1 % 2 == 0:
        return None
    return (((int(g1[0]) + a1 * a1) % 2**64) >> 1) * pow(a1, -1, 2**63) % 2**63


def test_the_second_servers_norm_share_does_not_give_it_the_input():
    """Item 2: S1 holds A_1, c_1, E (it sees X_0 - A_0) and its share g1. Control: against a dealer that skips c_0 the
    attack recovers x mod 2^63 at every odd a_1; against the real triple it never does (200 deals)."""
    rng = SeededRandomness(9)
    hits = {"real": 0, "no c_0": 0}
    tries = 0
    for _ in range(200):
        seed = rng.bytes(32)
        x = rng.uint64(1).reshape(1, 1)
        for name in hits:
            t0, t1 = deal_norms(1, 1, SeededRandomness(int.from_bytes(seed[:4], "big")), seed)
            if name == "no c_0":
                t1 = NormTriple(t1.a, t1.c + t0.c)
            e = x - t0.a - t1.a  # what both servers open
            guess = _s1_recovers_x(t1, norm_share(1, e, t1))
            hits[name] += guess is not None and guess == int(x[0, 0]) % 2**63
        tries += int(t1.a[0, 0]) % 2
    assert hits["no c_0"] == tries > 50
    assert hits["real"] == 0


def _split(s0: TwoServerRobust, s1: TwoServerRobust, x: np.ndarray, seed: int, *, tamper=None, deal=None, post=None, fetched=None):
    """One round with S1 (configured as `s1`) and the dealer behind S0's link (tests/protocols/split_round.py), the
    clients' frames through `tamper`; `deal(genuine)`, `post(genuine)` replace S0's dealer request and its relay to S1;
    `fetched` collects S1's frames. Returns (output, S1's round key)."""
    key = X25519Agreement.generate(SystemRandomness())
    wrappers = {name: wrap for name, wrap in (("deal", deal), ("post", post)) if wrap is not None}
    if fetched is not None:
        def recording(genuine):
            def fetch(src):
                fetched.append(genuine(src))
                return fetched[-1]
            return fetch
        wrappers["fetch"] = recording
    return split_round(s0, x, seed, s1=s1, key=key, tamper=tamper, link_hook=replacing(**wrappers)), key


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("asked, given_", [("gram", "norms"), ("norms", "gram")])
def test_a_batch_of_the_other_triple_at_m_1_fails_at_s1(asked, given_, d):
    """Item 3: at m = 1 a Gram and a norm batch have the same shapes (at d = 1 both are two (1, 1) matrices). S0 answers
    the request for one with a genuine, signed batch of the other (same index): S1 must stop the round at the dealer's
    batch (its part is sealed under its own kind), not compute a norm from a Gram triple's C_1 or the other way."""
    x = _ring(np.array([[7, -3, 5][:d]]), 10)
    kw = dict(rule="multi_krum" if asked == "gram" else "centered_clipping", f=0, bits=10, tau=20.0, min_clients=1)  # m = 1
    assert TwoServerRobust(**kw)._triple() == asked

    def swap(genuine):
        return lambda kind, args, index: genuine(given_ if kind == asked else kind, args, index)

    with pytest.raises(Aborted, match="MalformedMessage.*correlated randomness|correlated randomness.*MalformedMessage"):
        _split(TwoServerRobust(**kw), TwoServerRobust(**kw), x, seed=1, deal=swap)
    out, _ = _split(TwoServerRobust(**kw), TwoServerRobust(**kw), x, seed=1)  # control: unswapped, the in-process round
    _same(out, secure_sum(x, protocol=TwoServerRobust(**kw), seed=1))


@pytest.mark.parametrize("change", ["more rows", "more columns", "fewer columns"])
def test_s0_asking_the_dealer_for_other_shapes_fails_at_s1(change):
    """Item 3: an active S0 requests a norm triple of other shapes than (m, d) (the dealer only sees shapes): S1's
    parse of its part at (m, d), (m, 1) refuses it; the round stops with a typed error."""
    x = _ring(np.random.default_rng(3).integers(-30, 30, (4, 3)), 10)
    kw = dict(rule="centered_clipping", f=1, bits=10, tau=30.0)

    def other(genuine):
        def deal(kind, args, index):
            if kind == "norms":
                m, d = args
                args = {"more rows": (m + 1, d), "more columns": (m, d + 1), "fewer columns": (m, d - 1)}[change]
            return genuine(kind, args, index)
        return deal

    with pytest.raises(Aborted, match="MalformedMessage"):
        _split(TwoServerRobust(**kw), TwoServerRobust(**kw), x, seed=4, deal=other)


@pytest.mark.parametrize("mutation, error", [
    ("truncated", "MalformedMessage"), ("one byte more", "MalformedMessage"), ("a byte flipped", "MalformedMessage"),
    ("relabelled MATRIX", "MalformedMessage"), ("empty", "MalformedMessage"), ("the seed's frame", "MalformedMessage"),
    ("twice", "MalformedMessage"), ("dropped", "did not arrive")])
def test_s0_altering_the_relayed_norm_batch_fails_closed_at_s1(mutation, error):
    """Item 3: S0 relays S1's sealed norm batch (Kind.NORM_TRIPLE) altered, twice or not at all: S1 must stop before it
    uses any matrix (MalformedMessage; a batch missing: the next frame S0 waits for never comes), typed at S0."""
    x = _ring(np.random.default_rng(5).integers(-30, 30, (4, 3)), 10)
    kw = dict(rule="norm_bounding", f=1, bits=10, tau=30.0, norm_bound=60.0)
    seen = []

    def alter(genuine):
        def post(dst, frame):
            f = decode_frame(frame, party="test", stage="test")
            if f.kind != Kind.NORM_TRIPLE:
                return genuine(dst, frame)
            seen.append(mutation)
            if mutation in ("twice", "dropped"):
                return [genuine(dst, frame) for _ in range(2 if mutation == "twice" else 0)]
            payload = {"truncated": f.payload[:-1], "one byte more": f.payload + b"\x00",
                       "a byte flipped": f.payload[:40] + bytes([f.payload[40] ^ 1]) + f.payload[41:], "relabelled MATRIX": f.payload,
                       "empty": b"", "the seed's frame": bytes(32)}[mutation]
            kind = Kind.MATRIX if mutation == "relabelled MATRIX" else f.kind
            return genuine(dst, encode_frame(Frame(kind, f.session, f.sender, f.recipient, payload)))
        return post

    with pytest.raises(ProtocolError, match=error):
        _split(TwoServerRobust(**kw), TwoServerRobust(**kw), x, seed=6, post=alter)
    assert seen == [mutation]


@pytest.mark.parametrize("mutation", ["c_1 as a row", "c_1 missing", "an extra matrix", "truncated", "a third of A_1", "seed short"])
def test_a_malformed_norm_batch_from_the_dealers_endpoint_is_refused_before_use(mutation):
    """Item 3 in process: the dealer's endpoint (the transport's tamper hook, before the link seal) sends S1 a norm batch
    of the wrong layout, or S0 a short seed: the receiver's parse refuses it (MalformedMessage), nothing is computed."""
    n, d = 4, 3
    x = _ring(np.random.default_rng(5).integers(-30, 30, (n, d)), 10)
    hit = []

    def tamper(src, dst, frame):
        if src != DEALER:
            return [frame]
        f = decode_frame(frame, party="test", stage="test")
        if mutation == "seed short" and dst == SERVER and len(f.payload) == 32 and not hit:
            payload = f.payload[:31]
        elif mutation != "seed short" and f.kind == Kind.NORM_TRIPLE:
            r = Reader(f.payload, party="test", stage="test")
            a1, c1 = read_matrix(r, (n, d)), read_matrix(r, (n, 1))
            payload = {"c_1 as a row": encode_matrix(a1) + encode_matrix(c1.T), "c_1 missing": encode_matrix(a1),
                       "an extra matrix": f.payload + encode_matrix(c1), "truncated": f.payload[:-8],
                       "a third of A_1": encode_matrix(a1[:, :1]) + encode_matrix(c1)}[mutation]
        else:
            return [frame]
        hit.append(f.kind)
        return [encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, payload))]

    with pytest.raises(MalformedMessage):
        secure_sum(x, protocol=TwoServerRobust(rule="centered_clipping", f=1, bits=10, tau=30.0, iterations=2), seed=2, tamper=tamper)
    assert hit


@pytest.mark.parametrize("s0_kw, s1_kw", [
    (dict(rule="centered_clipping"), dict(rule="norm_bounding")),  # the same triple, another rule
    (dict(rule="coordinate_median", norm_bound=80.0), dict(rule="coordinate_median")),  # norms at S0, no triple at S1
    (dict(rule="centered_clipping"), dict(rule="centered_clipping", pre="nnm")),  # norms at S0, Gram at S1
])
def test_a_remote_s1_of_another_configuration_refuses_the_round(s0_kw, s1_kw):
    """Item 3: a remote S1 whose rule, or whose triple (from its norm bound or NNM), differs refuses the public parameters."""
    x = _ring(np.random.default_rng(1).integers(-20, 20, (5, 4)), 10)
    base = dict(f=1, bits=10, tau=30.0)
    with pytest.raises(Aborted, match="Refused"):
        _split(TwoServerRobust(**base, **s0_kw), TwoServerRobust(**base, **s1_kw), x, seed=2)


def test_a_remote_s1_with_another_norm_bound_of_the_same_bit_length_refuses():
    """check_public: "a server cannot change what a client or S1 checks". B enters only S0's target B - ||x||^2: was a
    break (S1, and a client, never saw the B S0 checks against); fixed: `_program` carries squared_bound."""
    x = _ring(np.random.default_rng(1).integers(-20, 20, (5, 4)), 10)
    base = dict(rule="centered_clipping", f=1, bits=10, tau=30.0)
    assert TwoServerRobust(**base, norm_bound=80.0)._program() != TwoServerRobust(**base, norm_bound=79.0)._program()
    with pytest.raises(Aborted, match="Refused"):
        _split(TwoServerRobust(**base, norm_bound=80.0), TwoServerRobust(**base, norm_bound=79.0), x, seed=2)


def _zero_matrices(payload: bytes) -> list[tuple[int, int]]:
    """The shapes of the all-zero matrices of >= 2 elements in a payload of matrices (a placeholder sent would be one)."""
    out, at = [], 0
    while at + 8 <= len(payload):
        rows, cols = int.from_bytes(payload[at:at + 4], "big"), int.from_bytes(payload[at + 4:at + 8], "big")
        size = 8 * rows * cols
        if at + 8 + size > len(payload):
            break
        if rows * cols >= 2 and not any(payload[at + 8:at + 8 + size]):
            out.append((rows, cols))
        at += 8 + size
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=st.sampled_from(NORM_RULES), n=st.integers(3, 5), d=st.integers(1, 6), bits=st.integers(4, 12), seed=st.integers(0, 2**16),
       bounded=st.booleans(), iterations=st.integers(1, 2), mode=st.sampled_from((None,) + BYZANTINE_SHARE_MODES),
       position=st.integers(0, 2**12))
def test_split_rounds_equal_the_in_process_round_and_send_no_placeholder(rule, n, d, bits, seed, bounded, iterations, mode, position):
    """Item 4: for random seeds, sizes, rules, norm bounds and a Byzantine client of every share mode, the split round
    (S0 here, S1 replayed behind its link, each computing only its own norm share and opened half) returns what the
    in-process round returns, and no MATRIX frame S0 posts or S1 returns is an all-zero matrix (a placeholder sent)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (n, d)) // (n if rule in ("coordinate_median", "trimmed_mean") else 1)
    norms = sorted(int(r @ r) for r in x)
    bound = _bound_at_least(norms[-2]) if bounded else None  # at the second largest norm: one honest client over it
    kw = dict(rule=rule, f=int(rng.integers(0, (n - 2) // 2 + 1)), bits=bits, norm_bound=bound, iterations=iterations,
              tau=float(math.isqrt(norms[-1]) // 2 + 1))
    protocol = TwoServerRobust(**kw)
    event(f"triple {protocol._triple()}")

    def spy():
        return ByzantineShares(n - 1, mode, position=position, bound=protocol.squared_bound or 0, bits=bits).tamper if mode else None

    xr = _ring(x, bits)
    posted, fetched = [], []

    def record(genuine):
        def post(dst, frame):
            posted.append(frame)
            return genuine(dst, frame)
        return post

    try:
        local = secure_sum(xr, protocol=TwoServerRobust(**kw), seed=seed, tamper=spy())
    except ProtocolError as exc:
        with pytest.raises(type(exc)):
            _split(TwoServerRobust(**kw), TwoServerRobust(**kw), xr, seed, tamper=spy())
        event("too few inputs")
        return
    split, _ = _split(TwoServerRobust(**kw), TwoServerRobust(**kw), xr, seed, tamper=spy(), post=record, fetched=fetched)
    _same(split, local)
    assert posted and fetched
    for frame in posted + [f for f in fetched if f is not None]:
        f = decode_frame(frame, party="test", stage="test")
        if f.kind == Kind.MATRIX:
            assert _zero_matrices(f.payload) == [], (f.sender, f.recipient)


def test_a_placeholder_is_zeros_at_the_other_server_only_and_the_shares_add_to_the_norms():
    """Item 4, directly: S0 split (here = S0) computes c_0 + ||X - A_1||^2 from the seed only; S1's share from its
    matrices only; their sum is ||x||^2 exactly (the placeholders, zeros, would give c_0 + ||X_0||^2: never the norm)."""
    rng = SeededRandomness(4)
    m, d = 3, 5
    seed = rng.bytes(32)
    t0, t1 = deal_norms(m, d, rng, seed)
    x = rng.uint64(m * d).reshape(m, d) >> np.uint64(40)
    x0 = rng.uint64(m * d).reshape(m, d)
    x1 = x - x0
    s0 = SeededNormTriple(seed, m, d)
    half0, half1 = s0.mask(x0), x1 - t1.a
    g0, g1 = s0.share(x0, plus=half1), norm_share(1, half1 + half0, t1)
    exact = [sum(int(v) ** 2 for v in row) % 2**64 for row in x]
    assert [int(v) for v in g0 + g1] == exact
    zero = np.zeros(m, dtype=np.uint64)
    assert [int(v) for v in g0 + zero] != exact and [int(v) for v in zero + g1] != exact


@pytest.mark.parametrize("rule, triple", [("centered_clipping", "norms"), ("coordinate_median", "norms"), ("multi_krum", "gram")])
def test_triple_elements_is_what_the_dealer_sent_s1_when_the_norm_check_rejects(rule, triple):
    """Item 5: README: the guarantee lists "the correlated randomness dealt this round (triple_elements ...)". With one
    honest client over B rejected at the norm check (after the triple was dealt for m = 5), the dealer's frame to S1
    carries 5 d + 5 (norms) or 5 d + 25 (Gram) elements. Was a break (counted from the m after the check); fixed: the
    channel counts S1's part as dealt."""
    n, d = 5, 6
    x = np.random.default_rng(1).integers(-20, 20, (n, d))
    x[0] = 500
    frames = []

    def wire(src, dst, sealed):
        frames.append((src, dst, sealed[:-TAG]))
        return [sealed]

    out = secure_sum(_ring(x, 12), protocol=TwoServerRobust(rule=rule, f=1, bits=12, norm_bound=200.0, tau=50.0), seed=3, wire=wire)
    assert [(type(e), e.party, e.stage) for e in out.rejected] == [(InvalidInput, "client 0", "norm check")]
    g = out.reports[0].guarantee.parameters
    assert g["triple"] == triple and g["m"] == n - 1
    kind = Kind.NORM_TRIPLE if triple == "norms" else Kind.MATRIX
    dealt = n * d + (n if triple == "norms" else n * n)
    if triple == "norms":  # the one NORM_TRIPLE frame: two matrix headers, then A_1 and c_1
        assert [len(b) for s, t, b in frames if s == DEALER and t == SECOND_SERVER and b[3] == kind] == [HEADER_BYTES + 16 + 8 * dealt]
    assert g["triple_elements"] == dealt


@pytest.mark.parametrize("rule", ["centered_clipping", "coordinate_median"])
def test_the_meter_counts_every_party_of_the_norm_stage_in_process(rule):
    """Item 5: in process the norm triple's work is metered: S0 in stage "norms" (no "gram" stage), the dealer and S1 as
    parties, the dealer's bytes to S1 on the link; the norm stage is a small part of S0's seconds at m d = 5 x 40."""
    x = _ring(np.random.default_rng(4).integers(-20, 20, (5, 40)), 12)
    out = secure_sum(x, protocol=TwoServerRobust(rule=rule, f=1, bits=12, norm_bound=300.0, tau=50.0), seed=5)
    cost = out.reports[0].cost
    assert "norms" in cost.server_seconds_by_stage and "gram" not in cost.server_seconds_by_stage
    assert cost.server_seconds_by_stage["norms"] > 0 and cost.party_seconds["dealer"] > 0 and cost.party_seconds["second server"] > 0
    assert cost.bytes_between["dealer -> second server"] >= 8 * (5 * 40 + 5)


def test_a_split_round_meters_the_dealer():
    """Was a break (the simulation link metered S1, not the dealer); fixed: `in_process` times `sealed_deal` as the dealer's."""
    x = _ring(np.random.default_rng(1).integers(-50, 50, (5, 4)), 10)
    kw = dict(rule="centered_clipping", f=1, bits=10, norm_bound=120.0, tau=60.0)
    out, _ = _split(TwoServerRobust(**kw), TwoServerRobust(**kw), x, seed=2)
    assert out.reports[0].cost.party_seconds.get("second server", 0) > 0
    assert out.reports[0].cost.party_seconds.get("dealer", 0) > 0


class Recording(TwoServerRobust):
    """The round unchanged, keeping both servers' norm shares (in process) for the wire check."""

    shares: dict | None = None

    def _norms(self, x, m, d, rng, ch):
        out = super()._norms(x, m, d, rng, ch)
        self.shares = {p: out[p].copy() for p in out}
        return out


@pytest.mark.parametrize("rule, sent", [("coordinate_median", False), ("trimmed_mean", False), ("centered_clipping", True)])
def test_a_servers_norm_share_never_travels_unless_the_rule_opens_the_norms(rule, sent):
    """Items 2 and 4: no frame between the servers carries S0's or S1's share of ||x_i||^2 (as one uint64) for the order
    rules, whose norms only the blinded check reads. Control: centered clipping opens ||x_i - v_0||^2 = ||x_i||^2 at
    v_0 = 0, so there each server's share does travel (the detector sees it)."""
    n, d = 5, 4
    x = _ring(np.random.default_rng(8).integers(-5, 5, (n, d)), 10)
    frames = []

    def wire(src, dst, sealed):
        if {src, dst} == {SERVER, SECOND_SERVER}:
            frames.append(sealed[:-TAG])
        return [sealed]

    protocol = Recording(rule=rule, f=1, bits=10, norm_bound=40.0, tau=5.0)
    out = secure_sum(x, protocol=protocol, seed=4, wire=wire)
    assert not out.rejected and out.reports[0].guarantee.parameters["triple"] == "norms"
    for p in (SERVER, SECOND_SERVER):
        values = [int(v).to_bytes(8, "little") for v in protocol.shares[p]]
        found = [any(v in f for f in frames) for v in values]
        assert found == [sent] * n, (p, found)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), d=st.integers(1, 5), change=st.one_of(st.integers(-80, -1), st.binary(min_size=1, max_size=24),
                                                                  st.tuples(st.integers(0, 15), st.integers(1, 255))),
       validate=st.booleans())
def test_any_layout_change_of_the_dealers_norm_batch_is_refused(n, d, change, validate):
    """Item 3, hypothesis: S1's norm batch from the dealer's endpoint truncated by any length, extended by any bytes, or
    with any byte of either matrix header changed: S1's parse refuses it (MalformedMessage) before any matrix is used."""
    x = _ring(np.random.default_rng(n * 7 + d).integers(-30, 30, (n, d)), 10)
    hit = []

    def tamper(src, dst, frame):
        f = decode_frame(frame, party="test", stage="test")
        if src != DEALER or f.kind != Kind.NORM_TRIPLE:
            return [frame]
        payload = bytearray(f.payload)
        if isinstance(change, tuple):  # bytes 0..7: A_1's (rows, cols); 8 + 8 n d ..: c_1's
            at, flip = change
            payload[at if at < 8 else 8 + 8 * n * d + at - 8] ^= flip
        else:
            payload = payload[:change] if isinstance(change, int) else payload + change
        payload = bytes(payload)
        hit.append(len(payload))
        return [encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, payload))]

    with pytest.raises(MalformedMessage):
        secure_sum(x, protocol=TwoServerRobust(rule="centered_clipping", f=0, bits=10, tau=30.0, validate=validate, min_clients=1), seed=2, tamper=tamper)
    assert hit


def test_one_seed_never_stands_for_two_shares_across_the_dealers_and_clients_domains():
    """Item 2: could a norm triple's seed serve as another batch's (or a client's) share? Party 0's streams of one seed in
    the norm triple's domains and in every other domain S0 expands a seed in (Gram, AND, blinding, edaBit, daBit
    triples; a client's input, digits, slack) share no 8-byte word: HKDF(seed, info=domain) keys each stream."""
    seed = bytes(range(32))
    others = [b"gram A", b"gram C", b"and a", b"and b", b"and c", b"blind a", b"blind r", b"blind c", b"edabit arith",
              b"dabit arith", b"input share", b"input digits", b"norm slack digits"]
    words_of = {dom: set(expand_share(seed, (4096,), dom).tolist()) for dom in (NORMS_A, NORMS_C, *others)}
    for mine in (NORMS_A, NORMS_C):
        for dom, stream in words_of.items():
            if dom != mine:
                assert not words_of[mine] & stream, (mine, dom)
    assert len(words_of[NORMS_A]) == 4096  # no repeats within a stream either (a broken PRG would show here)


def _chain(hooks):
    def tamper(src, dst, frame):
        return hooks[src](src, dst, frame) if src in hooks else [frame]
    return tamper


def _with_norm(norm: int, d: int = 4) -> list[int]:
    """A vector of d coordinates in [0, 7] with squared norm `norm` (a sum of four squares, Lagrange)."""
    for a in range(8):
        for b in range(a + 1):
            for c in range(b + 1):
                rest = norm - a * a - b * b - c * c
                if rest >= 0 and math.isqrt(rest) ** 2 == rest and rest <= 49:
                    return [a, b, c, math.isqrt(rest)] + [0] * (d - 4)
    raise ValueError(norm)


@pytest.mark.parametrize("rule", ["norm_bounding", "multi_krum"])
@pytest.mark.parametrize("b", [0, 1, 3, 4, 7, 8])
def test_every_slack_a_client_can_send_passes_only_for_its_own_norm_at_most_b(rule, b):
    """Item 1 at the edge, exhaustively for small B: one client for each (||x||^2 in [0, B + 3], slack s in [0, 2^L)),
    L = bit_length(B) (1 for B = 0), in one round: a client is included iff ||x||^2 <= B and s = B - ||x||^2 (the norm
    triple for norm bounding; the Gram diagonal for Multi-Krum, whose distances narrow to Z_2^44)."""
    protocol = TwoServerRobust(rule=rule, f=0, bits=4, norm_bound=_bound_at_least(b), tau=3.0, m=1, min_clients=1)
    assert protocol.squared_bound == b
    slack_bits = protocol._slack_bits()
    cases = [(norm, s) for norm in range(b + 4) for s in range(2**slack_bits)]
    x = np.array([_with_norm(norm) for norm, _ in cases])
    liars = {i: Liar(i, _ring(row, 64), _ring(row, 64), b - s, protocol).tamper for i, ((_, s), row) in enumerate(zip(cases, x))}
    out = secure_sum(_ring(x, 4), protocol=protocol, seed=b, tamper=_chain(liars))
    assert out.reports[0].guarantee.parameters["triple"] == ("norms" if rule == "norm_bounding" else "gram")
    rejected = {e.party for e in out.rejected}
    passed = [f"client {i}" not in rejected for i in range(len(cases))]
    assert passed == [norm <= b and s == b - norm for norm, s in cases]


def test_two_unseeded_rounds_never_share_a_norm_triple():
    """Item 2: A_1 reused across rounds would give S1 X - X' from the two opened E. Two rounds without a seed (the OS
    CSPRNG) on the same inputs: the dealer's parts for S1 (A_1, c_1) share no uint64, nor do the halves S0 opens to S1."""
    n, d = 4, 6
    x = _ring(np.random.default_rng(3).integers(-30, 30, (n, d)), 10)
    runs = []
    for _ in range(2):
        seen = {"parts": set(), "halves": set()}

        def wire(src, dst, sealed, seen=seen):
            body = sealed[:-TAG]
            r = Reader(body[HEADER_BYTES:], party="test", stage="test")
            if (src, dst) == (DEALER, SECOND_SERVER) and body[3] == Kind.NORM_TRIPLE:
                seen["parts"] |= set(read_matrix(r, (n, d)).ravel().tolist()) | set(read_matrix(r, (n, 1)).ravel().tolist())
            if (src, dst) == (SERVER, SECOND_SERVER) and body[3] == Kind.MATRIX and len(body) == HEADER_BYTES + 8 + 8 * n * d:
                seen["halves"] |= set(read_matrix(r, (n, d)).ravel().tolist())
            return [sealed]

        secure_sum(x, protocol=TwoServerRobust(rule="centered_clipping", f=1, bits=10, tau=30.0), wire=wire)
        runs.append(seen)
    assert len(runs[0]["parts"]) == n * d + n and len(runs[0]["halves"]) >= n * d
    assert not runs[0]["parts"] & runs[1]["parts"] and not runs[0]["halves"] & runs[1]["halves"]
