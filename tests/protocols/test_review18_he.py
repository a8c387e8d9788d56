"""Review 18: attacks on review 17's HE fix (each client signs the n it was announced; the key holder verifies with its
roster's n; `secagg.he.ckks_encodable`: one encoding holds half the headroom, and the key holder refuses a model it
cannot re-encrypt without moving its model).

Each test that starts "Was a break" was a strict xfail, fixed since; the others are attacks that held, kept as regressions.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.errors import ProtocolError, Refused
from protocols.core.messages import Kind
from protocols.core.pki import ClientIdentity
from protocols.core.schedule import Stage
from protocols.core.stack import StackContext, StackError, build, parse
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame
from protocols.he.aggregation import CKKSAggregation
from protocols.he.hidden_state import HiddenStateCKKS
from protocols.he.key_holder import KeyHolder
from protocols.he.messages import DecryptRequest, Target, digest, signed_message
from protocols.he.policy import KeyHolderPolicy, session_of
from protocols.he.robust import CKKSRobust
from secagg.he import EncryptedVector, ckks_encodable, ckks_headroom, fresh_error_bound
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer

S = session_of(1, b"r18h")
D = 4096  # one full chunk at N = 8192: a constant vector's encoding has its value as a coefficient (the worst case)


def _signed(keys, x, n, seed, session=S):
    """Signers, ciphertexts and the manifest of clients 0..len(x)-1, each announced `n` and signing `session`."""
    signers = [Signer.generate(SeededRandomness(seed).fork(str(i))) for i in range(len(x))]
    cts = [keys.public.encrypt(row).to_bytes() for row in x]
    manifest = {i: (digest(cts[i]), signers[i].sign(signed_message(session, i, n, digest(cts[i])))) for i in range(len(x))}
    return {i: s.public_bytes() for i, s in enumerate(signers)}, cts, manifest


def _handle(holder, request, session=S):
    return holder.handle(encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, request.encode())))


def _request_frame(session: bytes, cid: int) -> bytes:
    return encode_frame(Frame(Kind.REQUEST, session, SERVER, cid, bytes([Stage.MASKED_INPUT])))


# ---------------------------------------------------------------------------------------------------------- breaks


def test_a_refused_hidden_round_without_recompute_leaves_the_aggregators_model_as_it_was(sum_keys):
    """Was a break (review 18): without recompute the aggregator added the sum into its model in place before the request, so a refused round's inputs stayed in it; it now sends Enc(w) + the sum as a fresh total. The key holder's copy stays put on a refusal (review 17), the aggregator's does not: model 0.2 H, a round of
    2 x 0.2 H (each client's check passes: 2 x 0.2 H < H) is refused (0.6 H cannot be re-encrypted), then an honest
    round of 2 x -0.2 H must release 0.2 - 0.4 = -0.2 H. The aggregator's model had become 0.6 H: 0.2 H was released."""
    limit = ckks_headroom(sum_keys.public.params)
    protocol = HiddenStateCKKS(initial=np.full(D, 0.2 * limit), weight=1.0, min_clients=2, recompute=False)
    protocol.use_secret_context(sum_keys.secret)
    with pytest.raises(Refused, match="cannot be re-encrypted"):
        secure_sum(np.full((2, D), 0.2 * limit), protocol=protocol, seed=1)
    out = secure_sum(np.full((2, D), -0.2 * limit), protocol=protocol, seed=2)
    assert np.max(np.abs(out.result + 0.2 * limit)) <= out.reports[0].guarantee.numeric_error, (
        f"released {out.result[0] / limit:.3f} x headroom for -0.2: the refused round's inputs are in the model")


def test_an_initial_model_past_what_one_encoding_holds_is_refused_typed(sum_keys):
    """Was a break (review 18): an initial model past ckks_encodable built and raised SEAL's ValueError at the first round; the build (and HiddenStateCKKS) refuse it. Initial model 0.55 x headroom on a full chunk, inputs clipped to 1: 0.55 H + 2 x 0.5 x 1 < H passes the build's
    peak check, but no one can encrypt the initial model (the aggregator's Enc(w_0), the key holder's own copy)."""
    limit = ckks_headroom(sum_keys.public.params)
    ctx = StackContext(dim=D, participants=2, initial=np.full(D, 0.55 * limit))
    try:
        stack = build(parse("clip(bound=1) > hidden-state"), ctx)
    except StackError:
        return  # refused at build: fixed
    stack.inner.use_secret_context(sum_keys.secret)
    with pytest.raises(ProtocolError):  # SEAL's ValueError is no ProtocolError: it escapes (the break)
        secure_sum(np.full((2, D), 0.1), protocol=stack, seed=3)


def test_a_robust_client_refuses_an_input_seal_cannot_encode(robust_keys):
    """Was a break (review 18): check_encoding returned at once in robust rounds; a robust client now checks that its input encodes. ckks-8192 encodes up to about 2**98 a coefficient; a client's row of 1e31 (its own input, e.g. an unclipped update)
    must end in a typed refusal; any norm_bound the policy allows (< 358.45) would reject it anyway."""
    protocol = CKKSRobust()
    protocol.use_secret_context(robust_keys.secret)
    session = session_of(1, b"rob!")
    with pytest.raises(Refused):
        role = protocol.client_role(0, np.full(D, 1e31), {"session": session.hex(), "d": D, "n": 3}, SeededRandomness(4), {},
                                    identity=ClientIdentity.simulated(0))
        role.handle(_request_frame(session, 0))


@pytest.mark.parametrize("kind, public", [
    ("ckks", {"session": "zz" * 8, "d": 8, "n": 2}), ("ckks", {"d": 8, "n": 2}),
    ("hidden", {"session": "zz" * 8, "d": 8, "n": 2}), ("hidden", {"d": 8, "n": 2}), ("hidden", {"session": "00" * 8, "n": 2}),
], ids=["ckks non-hex session", "ckks no session", "hidden non-hex session", "hidden no session", "hidden no d"])
def test_a_client_refuses_malformed_public_parameters_typed(kind, public):
    """Was a break (review 18): a malformed session or d raised bare ValueError/KeyError; `announced` refuses them by name. The public parameters are the aggregator's (untrusted): like a missing n (review 17), a malformed session or d
    must be refused typed, by the client, not raise a bare ValueError/KeyError."""
    protocol = CKKSAggregation() if kind == "ckks" else HiddenStateCKKS(initial=np.zeros(8))
    with pytest.raises(ProtocolError):
        protocol.client_role(0, np.zeros(8), public, SeededRandomness(5), {}, identity=ClientIdentity.simulated(0))


def test_the_encodable_bound_is_where_seal_refuses_at_the_depth_2_preset(robust_keys):
    """Was a break (review 18): ckks_encodable was half the q0 headroom at every preset; it is 2**(data bits - 2 - scale_bits), SEAL's own bound."""
    limit = ckks_encodable(robust_keys.public.params)
    with pytest.raises(ValueError, match="too large"):
        robust_keys.public.encrypt(np.full(D, 1.001 * limit))


def test_a_robust_rounds_notes_claim_no_client_headroom_check(robust_keys):
    """Was a break (review 18): the robust report claimed a client headroom check that robust clients never make; CKKSRobust.range_note states the norm check. What holds there instead: the key holder's norm check (<= 1.01 norm_bound an input) and sums of fresh ciphertexts
    decrypted at the top level of ckks-8192 (60 + 40 + 40 bits: 3 x the q0 headroom decrypts right, measured)."""
    protocol = CKKSRobust()
    protocol.use_secret_context(robust_keys.secret)
    notes = protocol.guarantee(3, 8, 3, 1e-6).notes  # the base of the report CKKSRobust._finish makes
    assert "passed their clients' headroom check" not in notes and "each client checks against the n" not in notes


# ---------------------------------------------------------------------------------------------------------- held


def test_held_signatures_of_one_session_do_not_verify_in_the_next(sum_keys):
    """Replay: inputs signed for round 1 (same roster, same n) relayed to round 2's key holder are refused."""
    x = np.full((3, 16), 1.0)
    keys, cts, manifest = _signed(sum_keys, x, 3, 30)
    later = session_of(2, b"r18h")
    holder = KeyHolder(sum_keys.secret, KeyHolderPolicy(min_clients=2), session=later, client_keys=keys, length=16)
    with pytest.raises(Refused, match="does not verify"):
        _handle(holder, DecryptRequest(Target.SUM, manifest, b"", dict(enumerate(cts))), later)
    assert holder.decrypted == []


def test_held_a_roster_that_seats_the_clients_at_other_positions_is_refused(sum_keys):
    """The aggregator tells each client its position but gives the key holder the roster rotated (position u -> the key
    of client u + 1): every signature binds its own position, so nothing verifies."""
    x = np.full((3, 16), 1.0)
    keys, cts, manifest = _signed(sum_keys, x, 3, 31)
    rotated = {u: keys[(u + 1) % 3] for u in range(3)}
    holder = KeyHolder(sum_keys.secret, KeyHolderPolicy(min_clients=2), session=S, client_keys=rotated, length=16)
    with pytest.raises(Refused, match="does not verify"):
        _handle(holder, DecryptRequest(Target.SUM, manifest, b"", dict(enumerate(cts))))
    control = KeyHolder(sum_keys.secret, KeyHolderPolicy(min_clients=2), session=S, client_keys=keys, length=16)
    released = np.frombuffer(_handle(control, DecryptRequest(Target.SUM, manifest, b"", dict(enumerate(cts))))[4:], "<f8")
    assert np.max(np.abs(released - 3.0)) <= control.last_bound + 8 * control.release_noise_std(control.last_bound)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(d=st.integers(1, 9000), data=st.data())
def test_held_every_input_below_the_encodable_bound_encodes(sum_keys, d, data):
    """'A coefficient is at most the max |slot value|': a client's check in slot units (max |x| below ckks_encodable)
    never lets through an input SEAL's encoder refuses, whatever the length (d not a multiple of the slots), the signs
    and the support (a constant full chunk being the worst case)."""
    limit = ckks_encodable(sum_keys.public.params)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    shape = data.draw(st.sampled_from(["constant", "signs", "sparse", "uniform"]), label="shape")
    x = {"constant": np.ones(d), "signs": rng.choice([-1.0, 1.0], d), "sparse": (rng.random(d) < 0.05) * 1.0,
         "uniform": rng.uniform(-1, 1, d)}[shape]
    top = np.max(np.abs(x), initial=0.0)
    x = x * (0.999 * limit / top) if top > 0 else x
    assert np.max(np.abs(sum_keys.secret.decrypt(sum_keys.public.encrypt(x)) - x)) < 1e-3


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.floats(-0.499, 0.499), inputs=st.lists(st.floats(-0.4999, 0.4999), min_size=2, max_size=2))
def test_held_a_hidden_model_without_recompute_is_released_right_or_refused(sum_keys, model, inputs):
    """recompute=False: the key holder decrypts the aggregator's model + sum, with no peak check of its own. Honest
    parties: a model below what one encoding holds (it was re-encrypted) and 2 inputs each passing its client's check
    (n = 2), on full chunks. The sum can pass the headroom (up to 1.5 H) and wrap, but a wrapped coefficient lands
    beyond H / 2 (2 H - 1.5 H), where the key holder's re-encryption refuses: never released wrong."""
    limit, error = ckks_headroom(sum_keys.public.params), fresh_error_bound(sum_keys.public.params)
    x = np.array([np.full(D, v * limit) for v in inputs])
    protocol = CKKSAggregation(min_clients=2)
    for i in range(2):
        protocol.check_encoding(2, x[i], i)
    keys, cts, manifest = _signed(sum_keys, x, 2, 32)
    total = sum_keys.public.encrypt(np.full(D, model * limit))
    for ct in cts:
        total.add_(EncryptedVector.from_bytes(sum_keys.public, ct, length=D))
    holder = KeyHolder(sum_keys.secret, KeyHolderPolicy("hidden", min_clients=2, recompute=False), session=S, client_keys=keys,
                       length=D, model=sum_keys.secret.encrypt(np.full(D, model * limit)))
    try:
        _handle(holder, DecryptRequest(Target.MODEL, manifest, total.to_bytes(), None))
    except Refused as refused:
        assert "cannot be re-encrypted" in str(refused)
        assert abs(model + sum(inputs)) * limit > ckks_encodable(sum_keys.public.params) - 4 * error
        return
    truth = (model + sum(inputs)) * limit
    assert np.max(np.abs(holder.released - truth)) <= holder.last_bound + 8 * holder.release_noise_std(holder.last_bound), (
        f"released {holder.released[0] / limit:.4f} H for {truth / limit:.4f} H: the model wrapped")
