"""The two-server round with a norm triple (`secagg.norm_triple`) for the rules that read only the norms ||x_i||^2:
centered clipping and norm bounding without NNM, and the order rules' norm check (`TwoServerRobust._triple`).

Guarantees attacked here:
1. Same outputs (result, included, weights, rejected, numeric error) as the full-Gram path for the same seeds, and the
   norm check exactly the integers' ||x||^2 <= B, with norm bounds at the edge and Byzantine shares of every mode.
2. A Byzantine client whose norm wraps mod 2^64 to an honest one (X = p + 2^32 e_j on a zero coordinate: X_j^2 = 2^64)
   still fails: its norm over the triple is the honest residue, and the range check rejects it before any norm is used.
3. Both servers run the same triple: a remote S1 whose configuration picks the other kind refuses the round, and a Gram
   triple's batch relayed as a norm triple's (the same shapes at m = 1) fails authentication at S1 (its own kind).
4. The report says which triple ran (parameters, notes, cost stage), and the dealer sends S1 m d + m elements.
"""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocols.byzantine_shares import BYZANTINE_SHARE_MODES
from protocols.core.errors import InvalidInput, ProtocolError
from protocols.core.messages import Kind
from protocols.core.secure_sum import secure_sum
from protocols.core.wire import DEALER, HEADER_BYTES, SECOND_SERVER, SERVER
from protocols.testing import ByzantineShares
from protocols.two_server import TwoServerRobust, dealer
from protocols.two_server.identities import round_key_message, simulated_signer
from protocols.two_server.remote import sealed_deal
from secagg.agreement import X25519Agreement
from secagg.beaver import to_signed
from secagg.randomness import SystemRandomness
from secagg.ring import Ring
from tests.protocols.split_round import replacing, split_round

NORM_RULES = ("centered_clipping", "norm_bounding", "coordinate_median", "trimmed_mean")
TAG = 32  # the link tag the transport appends


class FullGram(TwoServerRobust):
    """The reference: the same rule with a Gram triple where the round would take a norm triple."""

    def _triple(self):
        return "gram" if super()._triple() == "norms" else super()._triple()


def _ring(x: np.ndarray, bits: int) -> np.ndarray:
    ring = Ring(bits)
    return ring.reduce(np.asarray(x, dtype=np.int64).astype(np.uint64).astype(ring.dtype))


def _squared(row) -> int:
    return sum(int(v) ** 2 for v in row)


def _edge_bound(b: int) -> float:
    """A norm bound whose squared_bound is exactly b."""
    nb = math.sqrt(b)
    while TwoServerRobust(norm_bound=nb).squared_bound < b:
        nb = float(np.nextafter(nb, math.inf))
    assert TwoServerRobust(norm_bound=nb).squared_bound == b
    return nb


def _same(a, b) -> None:
    assert np.array_equal(a.result, b.result) and a.included == b.included and a.weights == b.weights
    assert [(type(e), e.party, e.stage) for e in a.rejected] == [(type(e), e.party, e.stage) for e in b.rejected]
    assert a.reports[0].guarantee.numeric_error == b.reports[0].guarantee.numeric_error


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=st.sampled_from(NORM_RULES), n=st.integers(3, 6), d=st.integers(1, 24), bits=st.integers(4, 14),
       seed=st.integers(0, 2**16), edge=st.sampled_from([None, -1, 0, 1]), tau=st.floats(0.05, 2.0), iterations=st.integers(1, 3),
       mode=st.sampled_from((None,) + BYZANTINE_SHARE_MODES), position=st.integers(0, 2**12))
def test_the_norm_triple_gives_the_full_gram_rounds_outputs(rule, n, d, bits, seed, edge, tau, iterations, mode, position):
    """For the same inputs and seeds, the round over a norm triple returns what the round over a Gram triple returns,
    and an honest client passes the norm check iff ||x||^2 <= B in the integers (B at a client's norm, or one off)."""
    rng = np.random.default_rng(seed)
    f = int(rng.integers(0, (n - 1) // 2 + 1))
    x = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), (n, d)) // (n if rule in ("coordinate_median", "trimmed_mean") else 1)
    norms = [_squared(r) for r in x]
    bound = None if edge is None else _edge_bound(max(0, sorted(norms)[-1 - int(rng.integers(0, 2))] + edge))  # at a top norm
    attacker = n - 1 if mode is not None else None
    kw = dict(rule=rule, f=f, bits=bits, norm_bound=bound, iterations=iterations)
    protocol = TwoServerRobust(**kw)
    kw["tau"] = protocol.tau = tau * math.sqrt(max(norms) + 1)
    assert protocol._triple() == (None if rule in ("coordinate_median", "trimmed_mean") and bound is None else "norms")
    runs = []
    for make in (TwoServerRobust, FullGram):
        spy = ByzantineShares(attacker, mode, position=position, bound=protocol.squared_bound or 0, bits=bits) if mode else None
        try:
            runs.append(secure_sum(_ring(x, bits), protocol=make(**kw), seed=seed, tamper=spy.tamper if spy else None))
        except ProtocolError as exc:  # too few inputs left for the rule: both paths must say so
            runs.append(type(exc))
    if isinstance(runs[0], type):
        assert runs[0] is runs[1]
        event("too few inputs")
        return
    ours, reference = runs
    _same(ours, reference)
    event(f"{len(ours.rejected)} rejected")
    g = ours.reports[0].guarantee
    assert g.parameters["triple"] == (protocol._triple() or "none")
    if bound is not None:
        rejected = {e.party for e in ours.rejected}
        honest = [u for u in range(n) if u != attacker]
        assert {u for u in honest if f"client {u}" in rejected} == {u for u in honest if norms[u] > protocol.squared_bound}
        if mode in ("over-norm", "norm-wrap", "out-of-range"):
            assert f"client {attacker}" in rejected


@pytest.mark.parametrize("rule", ["centered_clipping", "norm_bounding", "trimmed_mean"])
def test_a_norm_that_wraps_mod_2_64_to_an_honest_one_is_rejected(rule):
    """The attack: X = p + 2^32 e_j with p_j = 0, so ||X||^2 = ||p||^2 + 2^64 = ||p||^2 mod 2^64 and its slack digits
    (of B - ||p||^2) prove the norm bound over the triple's shares. Digits of p (not X) are sent: the range check
    must reject it, and the round then equals the honest clients' round."""
    bits, n, d, attacker, j = 16, 5, 6, 2, 3
    x = np.random.default_rng(7).integers(-200, 200, (n, d))
    x[attacker, j] = 0
    protocol = TwoServerRobust(rule=rule, f=1, bits=bits, norm_bound=float(math.isqrt(max(_squared(r) for r in x)) + 1), tau=300.0)
    position = ((32 - bits) << 8) + j  # mode "wrapped": k = bits + (position >> 8) % (63 - bits) = 32, coordinate j
    spy = ByzantineShares(attacker, "wrapped", position=position, bound=protocol.squared_bound, bits=bits)
    out = secure_sum(_ring(x, bits), protocol=protocol, seed=3, tamper=spy.tamper)
    forged = [int(v) for v in to_signed(spy.effective)]
    assert forged[j] == 2**32 and _squared(forged) == _squared(x[attacker]) + 2**64  # the attack ran as described
    assert [(type(e), e.party, e.stage) for e in out.rejected] == [(InvalidInput, f"client {attacker}", "range check")]
    _same(out, secure_sum(_ring(x, bits), protocol=FullGram(rule=rule, f=1, bits=bits, norm_bound=protocol.norm_bound, tau=300.0),
                          seed=3, tamper=ByzantineShares(attacker, "wrapped", position=position, bound=protocol.squared_bound, bits=bits).tamper))
    assert out.reports[0].guarantee.parameters["triple"] == "norms"


def _split(s0: TwoServerRobust, s1: TwoServerRobust, x: np.ndarray, seed: int, deal=None):
    """One round with S1 (configured as `s1`) and the dealer behind S0's link (tests/protocols/split_round.py);
    `deal(genuine) -> deal` replaces what S0 asks the dealer."""
    return split_round(s0, x, seed, s1=s1, link_hook=None if deal is None else replacing(deal=deal))


@pytest.mark.parametrize("s0, s1", [(TwoServerRobust, FullGram), (FullGram, TwoServerRobust)])
def test_a_remote_s1_that_would_run_the_other_triple_refuses_the_round(s0, s1):
    """S0 and S1 with the same rule but different triples would add a norm share to a Gram diagonal share (or
    parse another batch): S1 refuses the public parameter `triple` first. Control: the same S1 class as S0 agrees."""
    x = _ring(np.random.default_rng(1).integers(-50, 50, (5, 4)), 10)
    kw = dict(rule="centered_clipping", f=1, bits=10, norm_bound=120.0, tau=60.0)
    with pytest.raises(ProtocolError, match="triple"):
        _split(s0(**kw), s1(**kw), x, seed=2)
    local = secure_sum(x, protocol=TwoServerRobust(**kw), seed=2)
    _same(_split(TwoServerRobust(**kw), TwoServerRobust(**kw), x, seed=2), local)


def test_a_gram_batch_relayed_as_a_norm_triple_fails_at_s1():
    """At m = 1 a Gram triple's part for S1, A_1 (1, d) and C_1 (1, 1), has a norm triple's shapes; S0 answers the
    norm-triple request with a genuine, signed Gram batch of the same index. S0 would expand its seed as a norm
    triple's (a wrong norm, a wrong weight): S1 must refuse it (its part is sealed under Kind.NORM_TRIPLE)."""
    x = _ring(np.array([[30, -40, 0]]), 10)
    kw = dict(rule="centered_clipping", f=0, bits=10, tau=20.0, min_clients=1)  # m = 1: one client

    def swap(genuine):
        return lambda kind, args, index: genuine("gram" if kind == "norms" else kind, args, index)

    with pytest.raises(ProtocolError, match="correlated randomness"):  # the dealer's signature covers the kind
        _split(TwoServerRobust(**kw), TwoServerRobust(**kw), x, seed=1, deal=swap)
    _same(_split(TwoServerRobust(**kw), TwoServerRobust(**kw), x, seed=1), secure_sum(x, protocol=TwoServerRobust(**kw), seed=1))


def test_the_dealer_refuses_a_bad_norm_triple_request():
    assert dealer.parts("norms", (3, 4)) == [(3, 4), (3, 1)] and dealer.message("norms") == Kind.NORM_TRIPLE
    for args in ((3,), (3, 4, 5), (0, 4), (3, 2**40), (3.0, 4)):
        with pytest.raises(ValueError, match="norms"):
            dealer.parts("norms", args)
    key = X25519Agreement.generate(SystemRandomness()).public_bytes()
    public = {"session": bytes(8).hex(), "second_server": key.hex(),
              "second_server_signature": simulated_signer("second-server").sign(round_key_message(0, key)).hex()}
    seed, sealed = sealed_deal("norms", (2, 3), 0, public, SystemRandomness())  # control: a genuine request is answered
    assert len(seed) == 32 and sealed
    with pytest.raises(ValueError, match="norms"):
        sealed_deal("norms", (2**29, 1), 0, public, SystemRandomness())


@pytest.mark.parametrize("config, triple", [
    (dict(rule="centered_clipping", iterations=2), "norms"), (dict(rule="norm_bounding", validate=False), "norms"),
    (dict(rule="coordinate_median", norm_bound=500.0), "norms"), (dict(rule="trimmed_mean"), "none"),
    (dict(rule="centered_clipping", pre="nnm"), "gram"), (dict(rule="multi_krum"), "gram")])
def test_the_report_says_which_triple_ran_and_the_dealer_sends_s1_m_d_plus_m_elements(config, triple):
    n, d = 5, 40
    x = _ring(np.random.default_rng(4).integers(-20, 20, (n, d)), 12)
    frames = []

    def wire(src, dst, sealed):
        frames.append((src, dst, sealed[:-TAG]))
        return [sealed]

    out = secure_sum(x, protocol=TwoServerRobust(f=1, bits=12, tau=50.0, **config), seed=5, wire=wire)
    assert not out.rejected
    g, stages = out.reports[0].guarantee, out.reports[0].cost.server_seconds_by_stage
    assert g.parameters["triple"] == triple and g.parameters["triples"] == int(triple != "none")
    assert g.parameters["triple_elements"] == {"norms": n * d + n, "gram": n * d + n * n, "none": 0}[triple]
    assert {"norms", "gram"} & set(stages) == ({triple} - {"none"})
    assert {"norms": "a norm triple", "gram": "a Gram triple", "none": "none (no triple)"}[triple] in g.notes
    to_s1 = [body for src, dst, body in frames if src == DEALER and dst == SECOND_SERVER and body[3] == Kind.NORM_TRIPLE]
    if triple == "norms":  # one batch, A_1 and c_1: 8 (m d + m) bytes and two matrix headers
        assert [len(b) for b in to_s1] == [HEADER_BYTES + 16 + 8 * (n * d + n)]
        seed = next(body for src, dst, body in frames if src == DEALER and dst == SERVER)[HEADER_BYTES:]
        assert len(seed) == 32 and not any(seed in body for _, dst, body in frames if dst == SECOND_SERVER)
    else:
        assert not to_s1
