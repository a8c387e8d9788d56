"""The key holder's policy is its own: the four ways a deviating aggregator got one client's input
released (issue 14) are refused, whatever request sequence it sends (hypothesis), and a Byzantine
client cannot get an input over the norm bound selected (issue 13, item 3)."""

import copy
import random
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocols import secure_sum
from protocols.core.errors import InvalidInput, ProtocolError, Refused
from protocols.core.messages import Kind
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame
from protocols.he.aggregation import CKKSAggregation
from protocols.he.key_holder import KeyHolder, accepted_distances, distance_matrix, is_euclidean
from protocols.he.messages import DecryptRequest, Target, digest, signed_message
from protocols.he.policy import KeyHolderPolicy, ReleaseLedger, session_of
from protocols.he.robust import CKKSRobust
from protocols.robust.rules import krum_select
from protocols.robust.validation import squared_distances
from protocols.testing import AggregatorStep, aggregator_requests, byzantine_ciphertexts, check_releases, mutate_ciphertext
from secagg.he import EncryptedVector
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer

D = 40


class Round:
    """Signed inputs of n clients for some sessions, as an aggregator holds them; frames to the key holder."""

    def __init__(self, public, x, sessions):
        self.x, self.sessions = x, sessions
        self.signers = [Signer.generate(SeededRandomness(3).fork(str(i))) for i in range(len(x))]
        self.keys = {i: s.public_bytes() for i, s in enumerate(self.signers)}
        self.cts = [public.encrypt(row).to_bytes() for row in x]

    def with_input(self, i, ct):
        """A copy whose client i sent `ct` (signers and the other ciphertexts unchanged)."""
        other = copy.copy(self)
        other.cts = [ct if u == i else c for u, c in enumerate(self.cts)]
        return other

    def manifest(self, session, ids, cts=None):
        cts = cts or self.cts
        return {i: (digest(cts[i]), self.signers[i].sign(signed_message(session, i, len(self.x), digest(cts[i])))) for i in ids}

    def request(self, session, target, ids, *, relay=True, payload=b"", extra=b""):
        return DecryptRequest(target, self.manifest(session, ids), payload, {i: self.cts[i] for i in ids} if relay else None, extra)

    def frame(self, session, request):
        return encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, request.encode()))

    def holder(self, secret, policy, session, ledger=None):
        return KeyHolder(secret, policy, session=session, client_keys=self.keys, length=len(self.x[0]), ledger=ledger)


def _values(payload: bytes) -> np.ndarray:
    return np.frombuffer(payload[4:], "<f8")


S1, S1_OTHER, S2 = session_of(1, b"aaaa"), session_of(1, b"bbbb"), session_of(2, b"cccc")


def test_attack_scalars_of_the_victims_own_ciphertext_release_nothing_of_it(sum_keys, robust_keys):
    """Attack 1: SCALARS whose payload is the victim's ciphertext doubled ten times (flood relatively small)."""
    x = np.random.default_rng(0).normal(0, 0.1, (4, D))
    victim = EncryptedVector.from_bytes(robust_keys.public, Round(robust_keys.public, x, [S1]).cts[0], length=D).mul_(1024.0).to_bytes()
    for keys, policy in ((sum_keys, KeyHolderPolicy()), (robust_keys, KeyHolderPolicy("robust", f=1))):
        r = Round(keys.public, x, [S1])
        holder = r.holder(keys.secret, policy, S1)
        request = r.request(S1, Target.SCALARS, [0, 1, 2, 3], payload=victim, extra=(6).to_bytes(4, "big"))
        if policy.round_type == "sum":
            with pytest.raises(Refused, match="SCALARS is not a request a sum round"):
                holder.handle(r.frame(S1, request))
            continue
        released = _values(holder.handle(r.frame(S1, request)))
        assert released.size == 4 + 6 and set(released[:4]) == {1.0}  # flags, then the six distances, nothing else
        true = squared_distances(x)[np.triu_indices(4, 1)]
        assert np.max(np.abs(released[4:] - true)) <= holder.distance_bound + 8 * holder.release_noise_std(holder.distance_bound)


def test_attack_a_selected_sum_of_the_victim_alone_is_refused(robust_keys):
    """Attack 2: SELECTED_SUM of one client, with a forged rule/f/m and forged distances, before and after SCALARS."""
    x = np.random.default_rng(1).normal(0, 0.1, (5, D))
    r = Round(robust_keys.public, x, [S1])
    holder = r.holder(robust_keys.secret, KeyHolderPolicy("robust", min_clients=2, f=1), S1)
    forged = (0).to_bytes(1, "big") + (0).to_bytes(4, "big") + (1).to_bytes(4, "big")  # "krum, f = 0, m = 1"
    with pytest.raises(Refused):
        holder.handle(r.frame(S1, r.request(S1, Target.SELECTED_SUM, [0], extra=forged)))
    holder.handle(r.frame(S1, r.request(S1, Target.SCALARS, range(5), payload=r.cts[0])))
    for ids in ([0], [0, 1], [0, 1, 2]):  # one input, or a set the rule did not select
        with pytest.raises(Refused):
            holder.handle(r.frame(S1, r.request(S1, Target.SELECTED_SUM, ids, extra=forged)))
    assert holder.decrypted == [Target.SCALARS]
    selected = holder.ledger.rounds["local/1"]["selection"]
    assert len(selected) == 4
    holder.handle(r.frame(S1, r.request(S1, Target.SELECTED_SUM, selected)))
    with pytest.raises(Refused):  # one selected sum a round
        holder.handle(r.frame(S1, r.request(S1, Target.SELECTED_SUM, selected)))


def test_attack_the_aggregators_parameters_do_not_set_the_policy(sum_keys):
    """Attack 3: the aggregator's JSON says min_clients = 1, flood_bits = 0 and gives a noise seed."""
    x = np.random.default_rng(2).normal(0, 1, (3, D))
    protocol = CKKSAggregation(min_clients=2, flood_bits=10)
    protocol.use_secret_context(sum_keys.secret)
    r = Round(sum_keys.public, x, [S1])
    params = {"session": S1.hex(), "length": D, "client_keys": {str(u): k.hex() for u, k in r.keys.items()},
              "min_clients": 1, "flood_bits": 0, "recompute": False, "seed": "00" * 32}
    releases = []
    for _ in range(2):
        holder = protocol.key_holder(params, client_keys=r.keys, ledger=ReleaseLedger())
        assert holder.policy == KeyHolderPolicy(min_clients=2, flood_bits=10)
        with pytest.raises(Refused, match="at least 2"):
            holder.handle(r.frame(S1, r.request(S1, Target.SUM, [0])))
        releases.append(_values(holder.handle(r.frame(S1, r.request(S1, Target.SUM, [0, 1])))))
    assert not np.array_equal(releases[0], releases[1])  # the noise is the key holder's own, not the seed's
    assert KeyHolderPolicy.from_config({}) == KeyHolderPolicy()
    assert KeyHolderPolicy.from_config({"he-min-clients": 5, "he-flood-bits": 12, "he-recompute": "false"}) == KeyHolderPolicy(
        min_clients=5, flood_bits=12, recompute=False)
    with pytest.raises(ValueError, match="krum releases one client"):
        KeyHolderPolicy("robust", rule="krum", min_clients=2)


def test_attack_a_new_session_does_not_reopen_the_round(sum_keys):
    """Attack 4: the sum with the victim, then another session of the same round, then the first session again,
    each request to a key holder rebuilt from its stored ledger (as the Flower node does)."""
    x = np.random.default_rng(3).normal(0, 1, (4, D))
    r = Round(sum_keys.public, x, [S1, S1_OTHER, S2])
    stored = ReleaseLedger().to_json()

    def ask(session, ids):
        nonlocal stored
        ledger = ReleaseLedger.from_json(stored)
        try:
            return r.holder(sum_keys.secret, KeyHolderPolicy(), session, ledger).handle(r.frame(session, r.request(session, Target.SUM, ids)))
        finally:
            stored = ledger.to_json()

    ask(S1, [0, 1, 2, 3])
    with pytest.raises(Refused, match="another session"):
        ask(S1_OTHER, [1, 2, 3])
    with pytest.raises(Refused, match="not allowed after"):
        ask(S1, [1, 2, 3])
    ask(S2, [1, 2, 3])  # the next round is a new round
    with pytest.raises(Refused, match="older"):
        ask(session_of(1, b"zzzz"), [1, 2, 3])


@dataclass
class Poisoned(CKKSRobust):
    """CKKSRobust whose client 0 sends `poison` (signed with its own key) in place of its encryption."""

    poison: bytes = b""

    def _ciphertext(self, i, row):
        return self.poison if i == 0 else super()._ciphertext(i, row)


@pytest.mark.parametrize("kind", ["imaginary", "padding_write", "scaled"])
def test_a_norm_100_poison_is_rejected_not_selected(robust_keys, kind):
    """Issue 13 item 3: a norm-100 poison (norm_bound 1) with imaginary parts of the same energy in the
    padding slots made its squared distances decrypt negative, and Multi-Krum selected it (result norm 100).
    Now the key holder takes the real part, zeroes the padding, finds the squared norm over norm_bound**2
    and rejects the client by name; the selected sum is within the bound."""
    x = np.random.default_rng(4).normal(0, 0.3 / np.sqrt(D), (6, D))
    protocol = Poisoned(rule="multi_krum", f=1, norm_bound=1.0, min_clients=1)
    protocol.use_secret_context(robust_keys.secret)
    protocol.poison = mutate_ciphertext(kind, robust_keys.public.encrypt(x[0]).to_bytes(), robust_keys.public, x[0], random.Random(1), [])
    out = secure_sum(x, protocol=protocol, seed=1)
    assert np.linalg.norm(out.result) <= len(out.included) * (1.0 + 1e-3)
    if kind == "padding_write":  # the padding is erased: what remains is client 0's honest x[0]
        assert not out.rejected and np.max(np.abs(out.result - x[list(out.included)].sum(0))) <= out.reports[0].guarantee.numeric_error
        return
    assert 0 not in out.included and len(out.included) == 4
    assert any(isinstance(e, InvalidInput) and "client 0" in str(e) for e in out.rejected)
    assert out.reports[0].guarantee.parameters["accepted"] == 5


def test_euclidean_check_detects_a_wrapped_distance():
    pts = np.random.default_rng(5).normal(size=(5, 3))
    dist = squared_distances(pts)
    assert is_euclidean(dist, 1e-9)
    bad = dist.copy()
    bad[0, 1] = bad[1, 0] = dist[0, 1] + 40.0  # one wrapped entry breaks the triangle inequality
    assert not is_euclidean(bad, 1e-6)
    bad[0, 1] = bad[1, 0] = -1.0
    assert not is_euclidean(bad, 1e-6)
    assert np.array_equal(distance_matrix(dist[np.triu_indices(5, 1)], 5), dist)


HONEST_ROBUST = [AggregatorStep(s, t, c, "relay", b"") for s in (0, 1) for t, c in ((Target.SCALARS, (0, 1, 2, 3)), (Target.SELECTED_SUM, None))]


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=aggregator_requests(4, 2), robust=st.booleans(), min_clients=st.integers(1, 3))
@example(steps=HONEST_ROBUST, robust=True, min_clients=2)
def test_no_request_sequence_gets_a_release_that_violates_the_policy(sum_keys, robust_keys, steps, robust, min_clients):
    keys = robust_keys if robust else sum_keys
    policy = KeyHolderPolicy("robust" if robust else "sum", min_clients=min_clients, f=1, rule="multi_krum")
    x = np.random.default_rng(6).normal(0, 0.1, (4, 8))
    sessions = [S1, S2, session_of(1, b"fake")]  # two signed rounds; the last one no client ever signed
    r = Round(keys.public, x, sessions)
    ledger, releases, selections = ReleaseLedger(), [], {}
    for step in steps:
        session = sessions[step.session]
        sign_for = session if step.session < 2 else session_of(7, b"real")
        clients = step.clients if step.clients is not None else selections.get(session, (0, 1, 2))
        manifest = r.manifest(sign_for, clients)
        inputs = {i: r.cts[i] for i in clients}
        if step.inputs == "swap" and len(clients) >= 2:
            a, b = clients[:2]
            inputs[a], inputs[b] = inputs[b], inputs[a]
        request = DecryptRequest(step.target, manifest, r.cts[0], None if step.inputs == "none" else inputs, step.extra)
        holder = r.holder(keys.secret, policy, session, ledger)
        try:
            released = _values(holder.handle(r.frame(session, request)))
        except ProtocolError:
            continue
        releases.append((session, step.target, clients))
        if step.target == Target.SCALARS:  # the aggregator's view: the rule on the released distances of the accepted
            accepted, dist = accepted_distances(sorted(clients), released)
            selections[session] = tuple(accepted[i] for i in krum_select(dist, policy.f, policy.selected_count(len(accepted))))
    check_releases(policy, releases, selection=selections.get)
    if steps == HONEST_ROBUST and robust and min_clients == 2:  # the honest sequence is released in full
        assert [t for _, t, _ in releases] == [Target.SCALARS, Target.SELECTED_SUM] * 2


@pytest.fixture(scope="module")
def robust_round(robust_keys):
    """One set of honest encryptions for every example: the bytes a mutation draw maps to are then the same
    each time Hypothesis replays it (fresh SEAL encryptions differ in length, and a flip at a position
    drawn from a seeded Random would hit other bytes), so a failing example reproduces."""
    return Round(robust_keys.public, np.random.default_rng(7).normal(0, 0.3 / np.sqrt(D), (5, D)), [S1])


@settings(max_examples=6, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_byzantine_ciphertext_is_never_selected_beyond_the_norm_bound(robust_keys, robust_round, data):
    x, honest = robust_round.x, list(robust_round.cts)
    kind, bad = data.draw(byzantine_ciphertexts(honest[0], robust_keys.public, x[0], honest[1:]))
    r = robust_round.with_input(0, bad)
    holder = r.holder(robust_keys.secret, KeyHolderPolicy("robust", f=1, norm_bound=1.0), S1)
    try:
        released = _values(holder.handle(r.frame(S1, r.request(S1, Target.SCALARS, range(5)))))
    except ProtocolError:
        return
    selected = holder.ledger.rounds["local/1"]["selection"]
    out = _values(holder.handle(r.frame(S1, r.request(S1, Target.SELECTED_SUM, selected))))
    as_decrypted = robust_keys.secret.decrypt(EncryptedVector.from_bytes(robust_keys.secret, bad, length=D))
    over = (0,) if np.linalg.norm(as_decrypted) > 1.0 + 1e-3 else ()
    check_releases(holder.policy, [(S1, Target.SCALARS, tuple(range(5))), (S1, Target.SELECTED_SUM, tuple(selected))], over_bound=over)
    assert released[0] == (0.0 if over else 1.0), kind  # exactly the inputs over the bound are flagged
    assert np.linalg.norm(out) <= len(selected) * (1.0 + 1e-3)
