"""S1 authenticates the two-server clients (`protocols.two_server.identities.share_message`, `ShareKeys`), attacked by
an active S0 that relays every frame and states the roster, never colluding with S1 or the dealer. Each client signs
its sealed share with its long-term key; S1 verifies it under its own copy of the clients' keys before opening the
share, checks S0's roster like `protocols.core.pki`'s, and takes part only while `min_clients` authenticated clients
remain. Each attack fails closed with a typed error naming the field or the party, or excludes only what S0 forged.

The rounds are split as on Flower (S1 and the dealer behind `remote.in_process`, S1's round key signed for RUN and
ROUND, the clients pinned to it), with client keys that are not the simulated ones: S0 holds none of their secrets."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.core.errors import Aborted, BelowThreshold, MalformedMessage, Refused
from protocols.core.messages import Kind
from protocols.core.pki import ClientIdentity, KeyDirectory, roster_digest
from protocols.core.secure_sum import secure_sum
from protocols.two_server import TwoServerRobust
from protocols.two_server.identities import share_message, simulated_signer
from protocols.two_server.sealing import associated_data
from secagg.agreement import X25519Agreement
from secagg.randomness import SeededRandomness
from tests.protocols.split_round import Identities, split_round

N, D, BITS, RUN, ROUND = 5, 4, 10, 7, 3
S1_IDENTITY = simulated_signer("second-server")
IDENTITIES = Identities.provisioned(S1_IDENTITY, RUN, ROUND, b"test client key %d", N + 1, "the test's provisioned keys")  # id N: outside the round
SIGNERS, DIRECTORY = IDENTITIES.signers, IDENTITIES.directory
RULE = {"rule": "norm_bounding", "f": 1, "bits": BITS, "tau": 4096.0}  # the result is the plain sum of the included inputs


def _inputs(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << BITS, (N, D)).astype(np.uint16)


def _round(x, seed=0, *, attack=None, roster=None, **kw):
    """One split round (tests/protocols/split_round.py) with IDENTITIES; `attack(collector, public)` lets S0 rewrite
    what it holds before it relays anything, `roster` what S0 states to S1 as the round's roster (the clients saw
    range(N)). Returns (output, S1's round key)."""
    config = {**RULE, **kw}
    key = X25519Agreement.generate(SeededRandomness(b"S1's round key"))

    def held(opened, rejected):
        assert rejected == [] and sorted(opened.server.signatures) == list(range(N))
        if attack is not None:
            attack(opened.server, opened.public)

    out = split_round(TwoServerRobust(**config), x, seed, key=key, identities=IDENTITIES, clients=TwoServerRobust(**config), held=held,
                      s1_public=None if roster is None else lambda public: {**public, "roster": roster})
    return out, key


def _excluded(out) -> list[str]:
    return sorted(e.party for e in out.rejected if isinstance(e, MalformedMessage))


def test_control_the_authenticated_split_round_takes_every_client_and_gives_the_in_process_result():
    x = _inputs(0)
    out, _ = _round(x, 4)
    assert list(out.rejected) == [] and out.included == tuple(range(N))
    assert np.array_equal(out.result, secure_sum(x, protocol=TwoServerRobust(**RULE), seed=4).result)
    params = out.reports[0].guarantee.parameters
    assert params["min_clients"] == 3 and params["signature_bytes"] == 64 and params["client_keys"] == DIRECTORY.source


REPLAYS = ("another run", "another round", "another position", "another client id", "another roster", "another S1 key",
           "another sealed share", "no signature", "garbage")


@given(replay=st.sampled_from(REPLAYS), victim=st.integers(0, N - 1), junk=st.binary(min_size=0, max_size=80))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_signature_s0_replays_from_another_context_excludes_only_its_client(replay, victim, junk):
    """S0 puts beside client `victim`'s sealed share a signature the client made (with its own key) over another run,
    round, position, client id, roster, S1 key or sealed share, or none, or junk: S1 excludes that client alone, named,
    before opening its share; the round goes on with the others."""
    x = _inputs(1)

    def attack(collector, public):
        sealed, session = bytes(collector.sealed[victim]), bytes.fromhex(public["session"])
        fields = {"run": RUN, "round_number": ROUND, "ad": associated_data(session, victim, Kind.SHARE_VECTOR), "cid": victim,
                  "roster": roster_digest(list(range(N))), "key": bytes.fromhex(public["second_server"]), "sealed": sealed}
        changed = {"another run": {"run": RUN + 1}, "another round": {"round_number": ROUND - 1},
                   "another position": {"ad": associated_data(session, (victim + 1) % N, Kind.SHARE_VECTOR)},
                   "another client id": {"cid": N}, "another roster": {"roster": roster_digest([*range(1, N), 0])},
                   "another S1 key": {"key": X25519Agreement.generate(SeededRandomness(b"old key")).public_bytes()},
                   "another sealed share": {"sealed": bytes(collector.sealed[(victim + 1) % N])}}.get(replay)
        if changed is not None:
            collector.signatures[victim] = SIGNERS[victim].sign(share_message(**{**fields, **changed}))
        else:
            collector.signatures[victim] = b"" if replay == "no signature" else junk

    out, _ = _round(x, 2, attack=attack)
    assert _excluded(out) == [f"client {victim}"]  # its sealed share is the genuine one: only the signature check excludes it
    assert out.included == tuple(u for u in range(N) if u != victim)
    kept = np.array([u != victim for u in range(N)])
    assert np.array_equal(out.result.astype(np.int64), x[kept].astype(np.int64).sum(axis=0) % (1 << BITS))


@given(pair=st.lists(st.integers(0, N - 1), min_size=2, max_size=2, unique=True), whole=st.booleans())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_s0_swapping_two_clients_bundles_excludes_exactly_those_two(pair, whole):
    """S0 swaps two clients' sealed shares with their signatures (`whole`) or the signatures alone: both excluded, named."""
    u, v = pair

    def attack(collector, public):
        collector.signatures[u], collector.signatures[v] = collector.signatures[v], collector.signatures[u]
        if whole:
            collector.sealed[u], collector.sealed[v] = collector.sealed[v], collector.sealed[u]

    out, _ = _round(_inputs(2), 3, attack=attack)
    assert _excluded(out) == sorted([f"client {u}", f"client {v}"])
    assert out.included == tuple(w for w in range(N) if w not in pair)


ROSTERS = st.one_of(
    st.tuples(st.just("an id twice"), st.integers(0, N - 1), st.integers(0, N - 1)),
    st.tuples(st.just("an id without a key"), st.integers(0, N - 1), st.integers(N + 1, 2**31)),
    st.tuples(st.just("too short"), st.integers(0, N - 1), st.just(0)),
    st.tuples(st.just("not ids"), st.integers(0, N - 1), st.sampled_from([-1, "3", 2.0, None, True])),
)


@given(case=ROSTERS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_s1_refuses_a_roster_s0_states_with_an_id_twice_an_id_without_a_key_or_of_another_size(case):
    """S0 states S1 a roster with a duplicated id, an id S1's directory has no key for, too few ids or entries that
    are not ids: S1 refuses to take part (Refused naming the roster), so the round aborts before any share is opened."""
    kind, at, value = case
    roster = list(range(N))
    if kind == "an id twice":
        roster[at] = roster[(at + 1 + value % (N - 1)) % N]
    elif kind == "too short":
        roster = roster[:at]
    else:
        roster[at] = value
    with pytest.raises(Aborted, match="second server stopped the round: Refused: .*roster") as stopped:
        _round(_inputs(3), 4, roster=roster)
    assert ("more than once" in str(stopped.value)) == (kind == "an id twice")
    assert ("has no key" in str(stopped.value)) == (kind == "an id without a key")


@given(order=st.permutations(list(range(N))))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_valid_roster_other_than_the_one_the_clients_signed_under_stops_the_round(order):
    """S0 shows S1 another roster of distinct provisioned ids than the clients': every signature binds the clients'
    roster, so none verifies and S1 stops the round below min_clients (the unchanged roster: the control)."""
    order = list(order)
    if order == list(range(N)):
        assert _round(_inputs(4), 5, roster=order)[0].included == tuple(range(N))
        return
    with pytest.raises(Aborted, match="min_clients = 3"):
        _round(_inputs(4), 5, roster=order)


@given(dropped=st.sets(st.integers(0, N - 1), max_size=N), min_clients=st.integers(1, N))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_s0_dropping_clients_below_min_clients_gets_a_refusal_from_s1(dropped, min_clients):
    """S0 discards the bundles of `dropped` clients (as if they dropped out): with fewer than max(2f + 1, min_clients)
    authenticated clients left S1 refuses to take part (BelowThreshold naming min_clients, the round aborts); else the
    round sums exactly the others."""
    def attack(collector, public):
        for u in dropped:
            del collector.sealed[u], collector.signatures[u]

    left = N - len(dropped)
    if left < max(3, min_clients):
        with pytest.raises(Aborted, match=f"second server stopped the round: BelowThreshold: .*min_clients = {min_clients}"):
            _round(_inputs(5), 6, attack=attack, min_clients=min_clients)
        return
    out, _ = _round(_inputs(5), 6, attack=attack, min_clients=min_clients)
    assert out.included == tuple(u for u in range(N) if u not in dropped) and out.reports[0].guarantee.parameters["min_clients"] == min_clients


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "3"])
def test_min_clients_must_be_a_positive_int_and_the_error_names_it(bad):
    with pytest.raises(ValueError, match=f"min_clients must be a positive int, found {bad!r}"):
        TwoServerRobust(min_clients=bad)


def test_the_default_min_clients_is_f_plus_2_and_the_round_needs_the_larger_of_it_and_2f_plus_1():
    assert [TwoServerRobust(f=f).min_clients for f in (0, 1, 3)] == [2, 3, 5]
    with pytest.raises(BelowThreshold, match="min_clients = 2"):  # f = 0: one input would be the output itself
        secure_sum(_inputs(6)[:1], protocol=TwoServerRobust(**{**RULE, "f": 0}), seed=1)
    assert secure_sum(_inputs(6)[:2], protocol=TwoServerRobust(**{**RULE, "f": 0}), seed=1).included == (0, 1)


def test_s0_and_s1_must_agree_on_min_clients():
    """min_clients is a public parameter of the program: an S1 (or a client) configured with another refuses the round."""
    s0, s1 = TwoServerRobust(**RULE), TwoServerRobust(**{**RULE, "min_clients": 4})
    public = s0.open_round(N, D, SeededRandomness(1)).public
    with pytest.raises(Refused, match="min_clients=3, this configuration says 4"):
        s1.check_public(public, "second server")


def test_a_client_signs_only_with_an_identity_the_roster_seats_at_its_position():
    protocol = TwoServerRobust(**RULE)
    opened = protocol.open_round(N, D, SeededRandomness(1))
    row = np.zeros(D, np.uint16)
    with pytest.raises(Refused, match="identity"):
        protocol.client_role(0, row, opened.public, SeededRandomness(2), {})
    with pytest.raises(Refused, match="roster"):  # not seated: no roster in the public parameters
        protocol.client_role(0, row, opened.public, SeededRandomness(2), {}, identity=ClientIdentity(0, SIGNERS[0], DIRECTORY))
    opened.seat(list(range(N)), DIRECTORY)
    with pytest.raises(Refused, match="does not seat this client"):
        protocol.client_role(1, row, opened.public, SeededRandomness(2), {}, identity=ClientIdentity(0, SIGNERS[0], DIRECTORY))
    with pytest.raises(Refused, match="more than once"):
        protocol.client_role(0, row, {**opened.public, "roster": [0, 0, 2, 3, 4]}, SeededRandomness(2), {},
                             identity=ClientIdentity(0, SIGNERS[0], DIRECTORY))
    assert protocol.client_role(0, row, opened.public, SeededRandomness(2), {}, identity=ClientIdentity(0, SIGNERS[0], DIRECTORY)) is not None


def test_adaptive_clip_seats_a_two_server_round_inside_it_and_its_clients_sign():
    """adaptive-clip runs its count beside the inner round: the inner two-server round is seated (simulated keys in
    process) and each client's identity reaches the two-server role, so the round runs and states whose keys."""
    from protocols.core.stack import StackContext, build, parse

    protocol = build(parse("adaptive-clip(norm=1) > clip(bound=1) > discretize > two-server"), StackContext(dim=3, participants=3, f=1))
    out = secure_sum(np.random.default_rng(0).normal(0, 0.5, (3, 3)).astype(np.float32), protocol=protocol, seed=0)
    inner = next(r for r in out.reports if r.layer == "two-server")
    assert inner.guarantee.parameters["client_keys"] == KeyDirectory().source and not out.rejected and inner.guarantee.parameters["m"] == 3
