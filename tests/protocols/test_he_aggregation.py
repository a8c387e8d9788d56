"""HE aggregation: CKKS sums within the stated bound, BFV sums exact, the key holder's refusals,
malformed client ciphertexts, and the hidden-state model."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import DropoutSchedule, Stage, secure_sum
from protocols.core.errors import BelowThreshold, MalformedMessage, ProtocolError, Refused
from protocols.core.messages import Kind
from protocols.core.wire import HEADER_BYTES, KEY_HOLDER, SERVER, Frame, encode_frame
from protocols.he.aggregation import BFVAggregation, CKKSAggregation
from protocols.he.hidden_state import HiddenStateCKKS
from protocols.he.key_holder import KeyHolder
from protocols.he.messages import DecryptRequest, Target, digest, signed_message
from protocols.he.policy import KeyHolderPolicy, ReleaseLedger
from protocols.testing import ring_inputs, schedules
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer

CKKS = {True: CKKSAggregation(recompute=True, min_clients=1), False: CKKSAggregation(recompute=False, min_clients=1)}
BFV = BFVAggregation(bits=16, min_clients=1)
FIXTURES = settings(max_examples=10, suppress_health_check=[HealthCheck.too_slow])


@FIXTURES
@given(n=st.integers(1, 6), d=st.integers(1, 5000), recompute=st.booleans(), seed=st.integers(0, 2**31), data=st.data())
def test_ckks_sum_within_the_reported_bound(n, d, recompute, seed, data):
    x = np.random.default_rng(seed).normal(0, 1, (n, d)).astype(np.float32)
    dropouts = data.draw(schedules(n, stages=(Stage.MASKED_INPUT,), max_rate=0.5))
    out = secure_sum(x, protocol=CKKS[recompute], dropouts=dropouts, seed=seed)
    assert out.included == tuple(i for i in range(n) if dropouts.active(i, Stage.MASKED_INPUT))
    g = out.reports[0].guarantee
    assert not g.exact and 0 < g.numeric_error < 1e-2
    assert np.max(np.abs(out.result - x[list(out.included)].astype(np.float64).sum(0))) <= g.numeric_error


@FIXTURES
@given(n=st.integers(1, 6), d=st.integers(1, 9000), data=st.data())
def test_bfv_sum_is_the_ring_sum(n, d, data):
    x = data.draw(ring_inputs(n, d, 16))
    dropouts = data.draw(schedules(n, stages=(Stage.MASKED_INPUT,), max_rate=0.5))
    out = secure_sum(x, protocol=BFV, dropouts=dropouts, seed=data.draw(st.integers(0, 2**31)))
    expected = x[list(out.included)].sum(axis=0, dtype=np.uint64) % 2**16
    assert out.result.dtype == np.uint16 and np.array_equal(out.result, expected)
    assert out.reports[0].guarantee.exact


def test_bfv_plain_modulus_overflow_is_refused_before_encrypting():
    with pytest.raises(ValueError, match="overflows"):
        secure_sum(np.zeros((3, 4), dtype=np.uint64), protocol=BFVAggregation(bits=39), seed=0)


def test_fewer_inputs_than_the_key_holder_requires_reveal_nothing():
    x = np.ones((4, 10), dtype=np.float32)
    drops = DropoutSchedule({0: Stage.MASKED_INPUT, 1: Stage.MASKED_INPUT, 2: Stage.MASKED_INPUT})
    with pytest.raises(BelowThreshold):
        secure_sum(x, protocol=CKKSAggregation(min_clients=2), dropouts=drops, seed=1)


def test_a_client_with_a_bad_ciphertext_is_left_out_and_the_round_completes():
    x = np.random.default_rng(0).normal(size=(4, 100)).astype(np.float32)

    def tamper(src, dst, frame):
        if src == 2 and frame[3] == Kind.CIPHERTEXT:
            return [frame[: HEADER_BYTES + 100] + bytes([frame[HEADER_BYTES + 100] ^ 1]) + frame[HEADER_BYTES + 101 :]]
        return [frame]

    out = secure_sum(x, protocol=CKKSAggregation(min_clients=2), seed=3, tamper=tamper)
    assert out.included == (0, 1, 3)
    assert any(isinstance(e, MalformedMessage) for e in out.rejected)


@pytest.mark.parametrize("change", ["drop-to-one", "swap-ciphertext", "resign-other-session", "replay-request"])
def test_key_holder_refuses_what_is_not_an_aggregate_of_the_round(change):
    keys = CKKSAggregation().keys
    rng = SeededRandomness(5)
    session, other = rng.bytes(8), rng.bytes(8)
    signers = [Signer.generate(rng.fork(str(i))) for i in range(3)]
    cts = {i: keys.public.encrypt(np.full(10, float(i))).to_bytes() for i in range(3)}

    def manifest(sess, ids):
        return {i: (digest(cts[i]), signers[i].sign(signed_message(sess, i, 3, digest(cts[i])))) for i in ids}

    keys_of = {i: s.public_bytes() for i, s in enumerate(signers)}
    holder = KeyHolder(keys.secret, KeyHolderPolicy(min_clients=2), session=session, client_keys=keys_of, length=10)
    good = DecryptRequest(Target.SUM, manifest(session, [0, 1, 2]), b"", cts)
    bad = {
        "drop-to-one": DecryptRequest(Target.SUM, manifest(session, [1]), b"", {1: cts[1]}),
        "swap-ciphertext": DecryptRequest(Target.SUM, manifest(session, [0, 1]), b"", {0: cts[2], 1: cts[1]}),
        "resign-other-session": DecryptRequest(Target.SUM, manifest(other, [0, 1]), b"", {0: cts[0], 1: cts[1]}),
        "replay-request": good,
    }[change]
    frame = lambda r: encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, r.encode()))  # noqa: E731
    if change == "replay-request":
        holder.handle(frame(good))
        restarted = KeyHolder(keys.secret, KeyHolderPolicy(min_clients=2), session=session, client_keys=keys_of, length=10,
                              ledger=ReleaseLedger.from_json(holder.ledger.to_json()))  # a key holder that restarts reloads its ledger
        with pytest.raises(Refused):
            restarted.handle(frame(good))
    with pytest.raises(Refused):
        holder.handle(frame(bad))
    if change != "replay-request":
        assert holder.decrypted == []


def test_manifest_only_key_holder_needs_no_inputs_but_recomputing_one_does():
    keys = CKKSAggregation().keys
    rng = SeededRandomness(6)
    session = rng.bytes(8)
    signer = Signer.generate(rng)
    ct = keys.public.encrypt(np.ones(5)).to_bytes()
    request = DecryptRequest(Target.SUM, {0: (digest(ct), signer.sign(signed_message(session, 0, 1, digest(ct))))}, ct)
    data = encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, request.encode()))
    common = dict(session=session, client_keys={0: signer.public_bytes()}, length=5)
    with pytest.raises(Refused, match="recomputes"):
        KeyHolder(keys.secret, KeyHolderPolicy(min_clients=1, recompute=True), **common).handle(data)
    assert KeyHolder(keys.secret, KeyHolderPolicy(min_clients=1, recompute=False), **common).handle(data)


@settings(max_examples=30)
@given(position=st.integers(0, 10**6), data=st.data())
def test_untrusted_request_bytes_never_escape_as_anything_but_protocol_errors(position, data):
    keys = CKKSAggregation().keys
    rng = SeededRandomness(7)
    session = rng.bytes(8)
    signer = Signer.generate(rng)
    ct = keys.public.encrypt(np.ones(5)).to_bytes()
    request = DecryptRequest(Target.SUM, {0: (digest(ct), signer.sign(signed_message(session, 0, 1, digest(ct))))}, b"", {0: ct}).encode()
    cut = position % (len(request) + 1)
    mutated = data.draw(st.sampled_from([request[:cut], request + b"\x00", request[:cut] + bytes([request[cut] ^ 0x10]) + request[cut + 1 :] if cut < len(request) else request]))
    holder = KeyHolder(keys.secret, KeyHolderPolicy(min_clients=1), session=session, client_keys={0: signer.public_bytes()}, length=5)
    try:
        holder.handle(encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, mutated)))
    except ProtocolError:
        pass


def test_hidden_state_model_tracks_the_plaintext_model_and_is_never_sent_to_the_aggregator():
    rng = np.random.default_rng(2)
    w = rng.normal(size=700)
    protocol = HiddenStateCKKS(initial=w, weight=0.5, min_clients=1)
    for r in range(4):
        x = rng.normal(size=(5, 700))
        drops = DropoutSchedule({r: Stage.MASKED_INPUT})
        out = secure_sum(x, protocol=protocol, dropouts=drops, seed=r)
        w = w + 0.5 * x[list(out.included)].sum(0)
        g = out.reports[0].guarantee
        assert np.max(np.abs(out.result - w)) <= g.numeric_error
        assert "no model" in g.server_learns and g.parameters["rounds_hidden"] == r + 1
        between = out.reports[0].cost.bytes_between
        assert between["key holder -> server"] < 1.2 * between["server -> key holder"]  # a ciphertext back, not a plaintext
    with pytest.raises(ValueError, match="coordinates"):
        secure_sum(np.zeros((2, 5)), protocol=protocol, seed=0)
