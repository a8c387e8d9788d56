"""Review 6: an independent attack on "S1 authenticates the two-server clients" (`identities.share_message`,
`ShareKeys`, `min_clients`), at the protocol level. The adversaries: an active S0 (writes the public parameters,
relays every frame, states the roster, drops whomever it likes, may collude with clients; never with S1 or the
dealer), Byzantine clients, and a replaying network. The rounds are split as on Flower (S1 and the dealer behind
`remote.in_process`, S1's round key signed for RUN and ROUND, pinned clients) with provisioned, non-simulated client
keys. Attacks that hold are plain regression tests; the xfail(strict) ones are breaks that succeed today.
Not repeated here: the author's attacks (tests/protocols/test_two_server_client_auth.py) and review 5's."""

import hashlib
import re
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from protocols.core.errors import Aborted, BelowThreshold, InvalidInput, MalformedMessage, Refused, ReplayedMessage
from protocols.core.messages import Kind
from protocols.core.pki import ClientIdentity, KeyDirectory
from protocols.core.secure_sum import secure_sum
from protocols.core.wire import SECOND_SERVER, SERVER, Frame, decode_frame, encode_frame
from protocols.two_server import TwoServerRobust
from protocols.two_server.channel import encode_matrix
from protocols.two_server.identities import ShareKeys, simulated_signer
from protocols.two_server.remote import second_server_step
from secagg.agreement import X25519Agreement
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer, public_pem
from tests.protocols.split_round import Identities, split_round

N, D, BITS, RUN, ROUND = 5, 4, 10, 11, 2
S1_IDENTITY = simulated_signer("second-server")  # S1's signing key: in a deployment the one of each node's config
IDENTITIES = Identities.provisioned(S1_IDENTITY, RUN, ROUND, b"review6 client key %d", N, "review 6's provisioned keys")
SIGNERS, DIRECTORY = IDENTITIES.signers, IDENTITIES.directory
RULE = {"rule": "norm_bounding", "f": 1, "bits": BITS, "tau": 4096.0}  # the result: the plain sum of the included inputs
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


def _inputs(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << BITS, (N, D)).astype(np.uint16)


def _split(x, seed=0, *, attack=None, s1_public=None, s1_config=None, key=None, tamper=None, wire=None, link_hook=None, **kw):
    """One split round (tests/protocols/split_round.py) with IDENTITIES. `attack(collector, public)`: S0 rewrites what it
    holds before relaying; `s1_public(public)`: the public parameters S0 states to S1 (the clients saw `public`);
    `s1_config`: S1's own configuration (default S0's); `key`: S1's round key; `tamper`/`wire`: the transport's hooks
    (compromised client, network); `link_hook(link, public)`: S0's link to S1, rewritten."""
    config = {**RULE, **kw}
    server = TwoServerRobust(**config)
    server._enough = lambda *args: None  # an active S0 ignores its own thresholds: only S1's stop the round
    return split_round(server, x, seed, s1=TwoServerRobust(**{**config, **(s1_config or {})}),
                       key=key or X25519Agreement.generate(SeededRandomness(b"review 6 S1 key")), identities=IDENTITIES,
                       clients=TwoServerRobust(**config), tamper=tamper, wire=wire, s1_public=s1_public, link_hook=link_hook,
                       held=None if attack is None else lambda opened, rejected: attack(opened.server, opened.public))


def _plain_sum(x, rows) -> np.ndarray:
    return x[list(rows)].astype(np.int64).sum(axis=0) % (1 << BITS)


# ------------------------------------------------------------------ 1. S0 states other program parameters to S1

PROGRAM = st.sampled_from([("min_clients", 1), ("min_clients", 2), ("min_clients", 3.0), ("min_clients", None), ("f", 0),
                           ("f", True), ("m", 1), ("rule", "krum"), ("rule", "coordinate_median"), ("pre", "nnm"),
                           ("validate", False), ("tau", 1e9)])


@given(field=PROGRAM)
@settings(max_examples=12, **SETTINGS)
def test_s0_stating_s1_a_smaller_min_clients_f_m_or_another_rule_gets_a_refusal_naming_the_field(field):
    """S0 rewrites one program parameter in what it states to S1 (a smaller min_clients or f, Multi-Krum's m = 1,
    Krum, no validation...) so that S1 would run the rule on fewer clients: S1 checks the public parameters against
    its OWN configuration and stops the round with a Refused naming that field, before it opens any share."""
    name, value = field
    with pytest.raises(Aborted, match=f"second server stopped the round: Refused: .*public parameter {name}="):
        _split(_inputs(0), 1, s1_public=lambda p: {**p, name: value})


def test_an_s1_configured_with_a_larger_min_clients_than_s0_states_refuses_rather_than_following_s0():
    """S1's own min_clients is 5; S0 (and its clients) run with the default 3: S1 refuses the round (its config wins)."""
    with pytest.raises(Aborted, match="min_clients=3, this configuration says 5"):
        _split(_inputs(0), 1, s1_config={"min_clients": 5})


# ------------------------------------------------------------------ 1. replays S1 must not count

def test_s0_replaying_a_share_from_another_session_under_the_same_s1_key_run_round_and_roster_excludes_its_client():
    """S1's round key K reused (S0 runs two sessions to the same signed K, same run, round and roster): S0 relays,
    in session B, client 2's sealed share and signature from session A. The session is in the signed associated data:
    client 2 is excluded, named, the others sum exactly."""
    key = X25519Agreement.generate(SeededRandomness(b"K, reused"))
    first = {}
    x_a, x_b = _inputs(1), _inputs(2)

    def keep(collector, public):
        first.update(sealed=bytes(collector.sealed[2]), signature=collector.signatures[2], session=public["session"])

    _split(x_a, 3, attack=keep, key=key)

    def replay(collector, public):
        assert public["session"] != first["session"]
        collector.sealed[2], collector.signatures[2] = first["sealed"], first["signature"]

    out = _split(x_b, 4, attack=replay, key=key)
    assert sorted(e.party for e in out.rejected if isinstance(e, MalformedMessage)) == ["client 2"]
    assert out.included == (0, 1, 3, 4) and np.array_equal(out.result.astype(np.int64), _plain_sum(x_b, (0, 1, 3, 4)))


def test_a_network_replaying_an_honest_clients_bundle_to_s0_neither_excludes_it_nor_counts_it_twice():
    """A replaying network delivers client 1's share bundle twice: S0 keeps the first (the second is a named
    ReplayedMessage), S1 opens client 1 once, and the sum has x_1 once."""
    x = _inputs(3)

    def twice(src, dst, sealed):
        return [sealed, sealed] if (src, dst) == (1, SERVER) else [sealed]

    out = _split(x, 5, wire=twice)
    assert out.included == tuple(range(N)) and np.array_equal(out.result.astype(np.int64), _plain_sum(x, range(N)))
    assert [(type(e), e.party) for e in out.rejected] == [(ReplayedMessage, "client 1")]  # the replay is named; the client stays in


# ------------------------------------------------------------------ 2. min_clients is counted after validation

@given(spoiled=st.sets(st.integers(0, N - 1), max_size=N - 1), min_clients=st.integers(3, N))
@settings(max_examples=15, **SETTINGS)
def test_min_clients_counts_only_clients_that_passed_validation_whatever_s0_spoils(spoiled, min_clients):
    """S0 alters the seeds it holds of the `spoiled` clients (their range check then fails: the one way the text says
    S0 can push honest clients out). S1 goes on only while at least min_clients clients passed validation: the count
    is over validated clients, never over the authenticated ones before validation."""
    x = _inputs(4)

    def attack(collector, public):
        for u in spoiled:
            collector.seeds[u] = bytes(b ^ 0xFF for b in collector.seeds[u])

    left = [u for u in range(N) if u not in spoiled]
    if len(left) < min_clients:
        with pytest.raises(Aborted, match=f"second server stopped the round: BelowThreshold: .*{len(left)} inputs passed the range check.*min_clients = {min_clients}"):
            _split(x, 6, attack=attack, min_clients=min_clients)
        return
    out = _split(x, 6, attack=attack, min_clients=min_clients)
    assert out.included == tuple(left) and np.array_equal(out.result.astype(np.int64), _plain_sum(x, left))
    assert sorted(e.party for e in out.rejected if isinstance(e, InvalidInput)) == [f"client {u}" for u in sorted(spoiled)]


# ------------------------------------------------------------------ 5. denial by one Byzantine client

def _share_frames(j: int):
    """Frames a Byzantine client j could seal and sign as its S1 share (its own signature verifies), each built for the
    round's session (`build(session)`)."""
    def frame(kind=Kind.SHARE_VECTOR, sender=j, recipient=SECOND_SERVER, payload=b""):
        return lambda session: encode_frame(Frame(kind, session, sender, recipient, payload))

    return st.one_of(
        st.binary(max_size=120).map(lambda junk: lambda session: junk),  # not a frame at all
        st.binary(max_size=200).map(lambda p: frame(payload=p)),
        st.tuples(st.integers(0, 3), st.integers(0, 2 * D), st.binary(max_size=64)).map(  # a share matrix of another shape
            lambda t: frame(payload=struct.pack("<II", t[0], t[1]) + t[2])),
        st.sampled_from([Kind.MATRIX, Kind.SHARE_SEED, Kind.SEALED_SHARE]).map(lambda k: frame(kind=k, payload=b"\x00" * 8)),
        st.just(frame(recipient=SERVER)),
        st.integers(0, N - 1).map(lambda v: frame(sender=v)),
    )


def _session(frame: bytes) -> bytes:
    return decode_frame(frame, party="test", stage="share").session


@given(j=st.integers(0, N - 1), data=st.data())
@settings(max_examples=40, **SETTINGS)
def test_a_byzantine_client_sealing_and_signing_any_bytes_as_its_share_is_excluded_alone(j, data):
    """Byzantine client j seals to S1's genuine key, and signs with its own key, any bytes in place of its share frame
    (junk, a frame of random payload, a matrix of another shape, another kind, recipient or sender): its signature
    verifies, so S1 opens it; whatever it holds, S1 excludes client j alone (MalformedMessage naming it) and the round
    sums the four honest inputs exactly: one client cannot crash S1 or get an honest client excluded."""
    x = _inputs(5)
    build = data.draw(_share_frames(j))
    sent = []

    def byzantine(src, dst, frame):
        if (src, dst) != (j, SECOND_SERVER):
            return [frame]
        sent.append(build(_session(frame)))  # for the round's own session
        return sent[-1:]

    out = _split(x, 7, tamper=byzantine)
    honest = [u for u in range(N) if u != j]
    assert len(sent) == 1 and out.included == tuple(honest), out.rejected
    assert [e.party for e in out.rejected if isinstance(e, MalformedMessage)] == [f"client {j}"]
    assert np.array_equal(out.result.astype(np.int64), _plain_sum(x, honest))


def test_control_a_byzantine_client_resending_its_genuine_frame_through_the_hook_is_included():
    """The hook above builds frames for the round's session: resending the genuine frame through it changes nothing."""
    x = _inputs(5)
    out = _split(x, 7, tamper=lambda src, dst, frame: [decode_frame(frame, party="t", stage="s") and frame])
    assert out.included == tuple(range(N)) and np.array_equal(out.result.astype(np.int64), _plain_sum(x, range(N)))


# ------------------------------------------------------------------ 4. hostile rosters and client-keys folders

def _s1_step(roster, directory=DIRECTORY, n=N):
    """S1's step on public parameters S0 states with `roster` (no frame relayed yet)."""
    key = X25519Agreement.generate(SeededRandomness(b"S1"))
    protocol = TwoServerRobust(**RULE)
    protocol.use_second_server(key.public_bytes())
    public = {**protocol.open_round(n, D, SeededRandomness(1)).public, "roster": roster}
    return second_server_step(protocol, public, key, [], clients=ShareKeys(directory, RUN, ROUND))


@given(extra=st.lists(st.integers(0, N - 1), min_size=1, max_size=4))
@settings(max_examples=10, **SETTINGS)
def test_a_roster_longer_than_n_is_refused_naming_the_roster(extra):
    step = _s1_step(list(range(N)) + extra)
    assert step.done and step.error.startswith("Refused:") and "roster" in step.error


@pytest.mark.parametrize("big", [2**32, 2**40])
@pytest.mark.parametrize("keys", ["provisioned", "simulated"])
def test_a_roster_id_beyond_u32_is_refused_with_a_typed_error_not_a_crash(big, keys):
    directory = KeyDirectory({**DIRECTORY.keys, big: SIGNERS[0].public_bytes()}, "a folder with an odd file") if keys == "provisioned" else KeyDirectory()
    roster = [0, 1, 2, 3, big]
    step = _s1_step(roster, directory)
    if step.error is None:  # seated: S1 packs the id when it checks the first share signature
        ShareKeys(directory, RUN, ROUND).seat(roster, N, party="second server").check(4, b"", bytes(32), bytes(64), b"", stage="share")
    assert step.error is not None and step.error.startswith("Refused") and "roster" in step.error


@pytest.mark.parametrize("roster", [[0, 1, 2, 3, 2**32], [0, 1, 2, 3] + [4] * 300_000])
def test_a_two_server_client_refuses_a_roster_id_beyond_u32_or_a_huge_roster_with_a_typed_error(roster):
    """The client side of the same checks (one helper, `KeyDirectory.for_roster`): S0 states client 0 a roster with an
    id it would sign as u32, or 300k entries with repeats: a Refused naming the roster, no struct.error, no quadratic scan."""
    opened = TwoServerRobust(**RULE).open_round(N, D, SeededRandomness(1))
    opened.seat(list(range(N)), DIRECTORY)
    with pytest.raises(Refused, match="roster"):
        TwoServerRobust(**RULE).client_role(0, _inputs(0)[0], {**opened.public, "roster": roster}, SeededRandomness(2), {},
                                           identity=ClientIdentity(0, SIGNERS[0], DIRECTORY))


@pytest.mark.parametrize("alias", ["03.pub", "\u0663.pub"])
def test_a_client_keys_folder_with_two_files_for_one_id_is_refused_naming_them(tmp_path, alias):
    for c, signer in SIGNERS.items():
        (tmp_path / f"{c}.pub").write_bytes(public_pem(signer.public_bytes()))
    other = Signer.from_private_bytes(hashlib.sha256(b"another key for id 3").digest())
    (tmp_path / alias).write_bytes(public_pem(other.public_bytes()))
    with pytest.raises(ValueError, match=re.escape(f"{alias!r} is not <client id>.pub")):
        KeyDirectory.read(tmp_path)


@pytest.mark.parametrize("name", ["notes.txt", "3.pem", "-1.pub", "3.pub.bak", ".hidden"])
def test_a_client_keys_folder_with_an_odd_file_is_refused_naming_it(tmp_path, name):
    for c, signer in SIGNERS.items():
        (tmp_path / f"{c}.pub").write_bytes(public_pem(signer.public_bytes()))
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ValueError, match="is not <client id>.pub"):
        KeyDirectory.read(tmp_path)


@pytest.mark.parametrize("roster", [[0, 1] * 150_000])
def test_a_huge_roster_with_repeats_is_refused_without_quadratic_work(roster):
    """Not a timing assertion on a figure: a linear check takes milliseconds here, the quadratic one ~10^11 steps;
    the alarm (5 s) only stops the test from hanging."""
    import signal

    def stop(signum, frame):
        raise TimeoutError("S1 still checking the roster after 5 s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(5)
    try:
        step = _s1_step(roster)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert step.error.startswith("Refused") and "roster" in step.error


# ------------------------------------------------------------------ 3. the collusion sentence, counted

@pytest.mark.parametrize("rule", ["norm_bounding", "centered_clipping", "multi_krum", "trimmed_mean"])
def test_s0_with_one_colluder_dropping_everyone_it_can_leaves_the_rule_min_clients_minus_one_honest_inputs(rule):
    """The collusion sentence, counted: S0 colluding with client 0 keeps only the colluder and the fewest honest
    clients S1 accepts (it drops the others as dropouts). S1 refuses with one honest input left (min_clients = 3,
    c = 1: 2 inputs) and goes on with exactly min_clients - c = 2 honest ones, every one in the output's included set."""
    x = _inputs(6)
    kw = {"rule": rule, "f": 1, "min_clients": 3}

    def keep(ids):
        def attack(collector, public):
            for u in range(N):
                if u not in ids:
                    del collector.sealed[u], collector.signatures[u]
        return attack

    with pytest.raises(Aborted, match="min_clients = 3"):
        _split(x, 8, attack=keep({0, 1}), **kw)
    out = _split(x, 8, attack=keep({0, 1, 2}), **kw)
    assert set(out.included) <= {0, 1, 2} and len(set(out.included) - {0}) >= (1 if rule == "multi_krum" else 2)


# ------------------------------------------------------------------ 1. S0 offers S1 one client twice

def _offer(x, ids, relay, seed=9, **kw):
    """A split round in which S0 rewrites its first relay to S1: the ids matrix becomes `ids`, and the share frames
    relayed are those of `relay` (client positions, in order, a client's genuine signed share each time)."""
    def rewrite(link, public):
        ask = link._ask

        def rewritten(frames):
            if frames and decode_frame(frames[0], party="test", stage="share").kind == Kind.MATRIX and len(frames) > 1 and not rewritten.done:
                rewritten.done = True
                head = decode_frame(frames[0], party="test", stage="share")
                shares = {decode_frame(f, party="test", stage="share").payload[:4]: f for f in frames[1:]}
                ids_frame = encode_frame(Frame(Kind.MATRIX, head.session, head.sender, head.recipient,
                                               encode_matrix(np.array([ids], dtype=np.uint64))))
                frames = [ids_frame] + [shares[struct.pack(">I", u)] for u in relay]
            return ask(frames)
        rewritten.done = False
        link._ask = rewritten
        return link
    return _split(x, seed, link_hook=rewrite, **kw)


@pytest.mark.parametrize("ids, relay", [([0, 0, 1], [0, 0, 1]), ([0, 1, 1, 2], [0, 1, 1, 2]), ([2, 1, 0], [2, 1, 0])])
def test_s0_offering_s1_one_client_twice_or_out_of_order_gets_no_count_over_duplicates(ids, relay):
    """S0 lists client 0 (or 1) twice in the ids it offers S1, relaying its genuine signed share twice, to reach
    min_clients = 3 with two distinct clients (or three with a duplicate beside them): S1 refuses the ids matrix
    (strictly ascending ids only) and stops the round, never counting a client twice."""
    with pytest.raises(Aborted, match="second server stopped the round: MalformedMessage: .*not strictly ascending"):
        _offer(_inputs(7), ids, relay)


def test_control_the_rewriting_relay_changes_nothing_when_it_relays_what_s0_holds():
    x = _inputs(7)
    out = _offer(x, list(range(N)), list(range(N)))
    assert out.included == tuple(range(N)) and np.array_equal(out.result.astype(np.int64), _plain_sum(x, range(N)))


# ------------------------------------------------------------------ 1. S0 states the clients another program

@pytest.mark.parametrize("name, value", [("min_clients", 2), ("f", 0), ("m", 1), ("rule", "krum")])
def test_s0_stating_the_clients_a_smaller_min_clients_or_f_than_their_configuration_gets_a_refusal(name, value):
    """A client checks the program in the public parameters against its own configuration too (what it seals to S1
    must be for the program S1 runs): another min_clients, f, m or rule and it refuses, naming the field."""
    protocol = TwoServerRobust(**RULE)
    opened = protocol.open_round(N, D, SeededRandomness(1))
    opened.seat(list(range(N)), DIRECTORY)
    with pytest.raises(Refused, match=f"public parameter {name}="):
        TwoServerRobust(**RULE).client_role(0, _inputs(0)[0], {**opened.public, name: value}, SeededRandomness(2), {},
                                           identity=ClientIdentity(0, SIGNERS[0], DIRECTORY))


# ------------------------------------------------------------------ 3. "public positive weights" (norm bounding)

def test_norm_bounding_sums_every_included_input_with_a_positive_applied_weight():
    """Was a break: round(w_i 2**12) / 2**12 is 0 for w_i < 2**-13, so inputs with ||x_i - v|| > 8192 tau were summed
    with weight 0 while Output.weights and the guarantee said positive, and the output could be one input alone.
    Now an input with applied weight 0 is not included, the weights are the applied ones, and a sum of fewer than
    min_clients such inputs is refused (BelowThreshold naming min_clients)."""
    bits = 24
    x = np.zeros((N, D), dtype=np.int64)
    x[0, 0] = 1  # one small input (within tau), four far ones (norm 2**22 > 8192 tau)
    x[1:, 1] = 1 << 22
    protocol = TwoServerRobust(rule="norm_bounding", f=1, bits=bits, tau=1.0)
    with pytest.raises(BelowThreshold, match="min_clients = 3"):
        secure_sum(x.astype(np.uint32) % (1 << bits), protocol=protocol, seed=3)
    x[:3, 0], x[1:3, 1] = 1, 0  # control: three near inputs (weight 1), two far (2**-22, applied 0): those two are left out
    out = secure_sum(x.astype(np.uint32) % (1 << bits), protocol=protocol, seed=3)
    assert out.included == (0, 1, 2) and out.weights == (1.0, 1.0, 1.0)
    assert np.abs(_signed(out.result, bits) - x[:3].sum(axis=0)).max() <= 1  # truncation: at most 1 a coordinate


def _signed(values, bits):
    v = np.asarray(values, dtype=np.int64) % (1 << bits)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v)


# ------------------------------------------------------------------ 3. the collusion sentence against an active S0

def _bump_distances(monkeypatch, target, bump=1 << 52):
    """S0 deviates in one opening: it adds `bump` to its share of ||x_i - v||**2 for every client but `target`."""
    from protocols.two_server.channel import S0, Channel

    honest_exchange = Channel.exchange

    def exchange(self, kind, mine, shape, combine=np.add):
        if self.here == S0 and self.meter.stage == "rule" and shape == (1, N):  # S0's share of the distances to v
            bumped = mine[S0].copy()
            bumped[0, [u for u in range(N) if u != target]] += np.uint64(bump)
            mine = {**mine, S0: bumped}
        return honest_exchange(self, kind, mine, shape, combine)

    monkeypatch.setattr(Channel, "exchange", exchange)


def _others_changed(x, target):
    y = x.copy()
    y[[u for u in range(N) if u != target]] ^= 0x155  # other values, same range
    return y


@pytest.mark.parametrize("rule", ["norm_bounding", "centered_clipping"])
def test_control_the_clipping_output_depends_on_every_included_input(rule):
    x = _inputs(8)
    kw = {"rule": rule, "iterations": 2 if rule == "centered_clipping" else 1}
    assert not np.array_equal(_split(x, 10, **kw).result, _split(_others_changed(x, 0), 10, **kw).result)


@pytest.mark.parametrize("rule", ["norm_bounding", "centered_clipping"])
@pytest.mark.parametrize("target", [0, 3])
def test_an_active_s0_cannot_make_the_clipping_output_depend_on_one_honest_input_alone(monkeypatch, rule, target):
    _bump_distances(monkeypatch, target)
    x = _inputs(8)
    kw = {"rule": rule, "iterations": 2 if rule == "centered_clipping" else 1}
    try:
        out, other = _split(x, 10, **kw), _split(_others_changed(x, target), 10, **kw)
    except Aborted:
        return  # S1 stopping a round whose openings S0 bent is a fix
    # today S1 took part (all 5 signed, validated clients included, none rejected) and the output is x_target's alone
    assert not np.array_equal(out.result, other.result), f"included {out.included}: the output is a function of x_target alone"


@pytest.mark.xfail(strict=True, reason="stated, not fixed (no MAC checks the openings): an active S0 bumps its share of the "
                   "opened ||x_i - v||**2 of every client but the target by (4096 tau)**2, so each other input's applied weight "
                   "is 2**-12, positive: S1 counts 5 >= min_clients inputs in the sum, and the output is x_target to within 1 a "
                   "coordinate plus sum_i x_i / 4096 (< 1 here): one honest input dominates it")
def test_an_active_s0_cannot_make_one_honest_input_dominate_the_norm_bounding_output(monkeypatch):
    """Norm bounding (one clipping iteration from v = 0); centered clipping's later iterations need a subtler bump."""
    target = 2
    _bump_distances(monkeypatch, target, bump=int(4096 * RULE["tau"]) ** 2)
    x = _inputs(8)
    try:
        out = _split(x, 10, rule="norm_bounding")
    except Aborted:
        return  # S1 stopping such a round is a fix
    assert len(out.included) == N  # every input has a positive applied weight: S1 took part
    gap = np.abs(out.result.astype(np.int64) - x[target].astype(np.int64)).max()
    assert gap > 2, f"the output is x_target to within {gap} a coordinate"


# ------------------------------------------------------------------ 5. denial: a Byzantine client's well-formed share

@given(j=st.integers(0, N - 1), words_seed=st.integers(0, 2**32 - 1), parts=st.sets(st.sampled_from(["share", "digits", "slack"]), min_size=1))
@settings(max_examples=12, phases=[Phase.explicit, Phase.reuse, Phase.generate], **SETTINGS)
def test_a_byzantine_clients_well_formed_share_of_any_words_fails_only_its_own_validation(j, words_seed, parts):
    """Byzantine client j replaces `parts` of its genuine S1 share (the explicit share, the digit planes, the norm
    slack planes) by words of its choosing, shapes kept, sealed and signed: it passes the signature and parse checks,
    so it reaches the range check and (slack only) the norm check beside the honest clients. Only j may fail them
    (InvalidInput naming j); every honest client stays included, and the output is their exact sum plus j's if j passed."""
    from protocols.core.wire import Reader
    from protocols.two_server.channel import encode_share, parse_share
    from secagg.bit_sharing import words

    bound = float(1 << (BITS + 1))  # above every honest input's norm (checked)
    x = _inputs(9)
    assert all(float(np.linalg.norm(r.astype(np.float64))) <= bound for r in x)
    slack_bits = max(1, (int(bound) ** 2).bit_length())
    g = np.random.default_rng(words_seed)

    def byzantine(src, dst, frame):
        if (src, dst) != (j, SECOND_SERVER):
            return [frame]
        f = decode_frame(frame, party="test", stage="share")
        share = dict(zip(("share", "digits", "slack"), parse_share(Reader(f.payload, party="t", stage="s"), D, (BITS, words(D)), (slack_bits, 1))))
        share = {k: g.integers(0, 2**63, v.shape, dtype=np.uint64) if k in parts else v for k, v in share.items()}
        return [encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, encode_share(share["share"], share["digits"], share["slack"])))]

    out = _split(x, 11, tamper=byzantine, norm_bound=bound)
    honest = [u for u in range(N) if u != j]
    assert set(honest) <= set(out.included) and [e.party for e in out.rejected] in ([], [f"client {j}"])
    assert all(isinstance(e, InvalidInput) for e in out.rejected)
    assert (j in out.included) or out.rejected[0].stage == ("norm check" if parts == {"slack"} else "range check")
    if j not in out.included:
        assert np.array_equal(out.result.astype(np.int64), _plain_sum(x, honest))


def test_one_key_under_two_ids_is_refused_so_one_client_cannot_count_twice(tmp_path):
    for c, signer in SIGNERS.items():
        (tmp_path / f"{c}.pub").write_bytes(public_pem(signer.public_bytes()))
    (tmp_path / f"{N}.pub").write_bytes(public_pem(SIGNERS[0].public_bytes()))
    with pytest.raises(ValueError, match="same key"):
        KeyDirectory.read(tmp_path)
