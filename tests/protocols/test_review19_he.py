"""Review 19: attacks on review 18's HE fixes (the hidden round without recompute sends Enc(w) + the sum as a fresh total
and keeps the in-process key holder's model iff it released; `announced` parses the aggregator's public parameters;
robust clients check that their input encodes; `ckks_encodable` = 2**(data bits - 2 - scale_bits); the build checks the
initial model). The SecAgg+ natural-cut fix: test_review19_masking.py.

Tests that start "Was a break" were strict xfails, fixed since; the others are attacks that held, kept as regressions.
"""

import numpy as np
import pytest

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core import wire
from protocols.core.errors import ProtocolError, Refused
from protocols.core.messages import Kind
from protocols.core.pki import ClientIdentity
from protocols.core.stack import StackContext, StackError, build, parse
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame
from protocols.he.aggregation import BFVAggregation, CKKSAggregation
from protocols.he.hidden_state import HiddenStateCKKS
from protocols.he.key_holder import KeyHolder
from protocols.he.messages import DecryptRequest, Target, digest, signed_message
from protocols.he.policy import KeyHolderPolicy, session_of
from protocols.he.release import box_key_message, encode_box_keys
from protocols.he.robust import CKKSRobust
from secagg.he import HeContext, ckks_encodable, ckks_headroom
from secagg.he_params import HeParameters, preset
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer

S = session_of(1, b"r19h")
LOW_ORDER = bytes(32)  # the X25519 point 0: every exchange with it is the all-zero secret


def byzantine_box_key(key: bytes) -> HiddenStateCKKS:
    """A hidden-state protocol whose client 0 is Byzantine: it announces `key` as its box key, validly signed with its
    own long-term key (an honest client's is 32 bytes, a point of X25519's large subgroup)."""

    class ByzantineBoxKey(HiddenStateCKKS):
        def client_role(self, i, row, public, rng, measurements, identity=None):
            role = super().client_role(i, row, public, rng, measurements, identity)
            if i == 0:
                signature = identity.signer.sign(box_key_message(bytes.fromhex(public["session"]), 0, key))
                measurements[self.name] = {"box_key": key.hex(), "box_signature": signature.hex()}
            return role

    return ByzantineBoxKey(initial=np.zeros(4), weight=1.0, min_clients=2)


# ---------------------------------------------------------------------------------------------------------- breaks


@pytest.mark.parametrize("key", [bytes(31), bytes(33), LOW_ORDER], ids=["31 bytes", "33 bytes", "low-order point 0"])
def test_a_byzantine_clients_box_key_leaves_it_without_the_model_and_the_round_goes_on(key):
    """Was a break (review 19): a validly signed box key of 31/33 bytes or of low order ended every hidden round; _box_keys leaves such a client out (usable_box_key). One Byzantine client of three signs a box key no honest client makes. `_box_keys` promises that "a client whose
    announcement fails is left without the model (named in `rejected`) rather than having the key holder refuse the
    round"; today one such client ends every hidden round (typed for a wrong length, with secagg's InvalidTag, which
    fl.experiment does not record as an aborted round, for the point 0)."""
    out = secure_sum(np.ones((3, 4)), protocol=byzantine_box_key(key), seed=1)
    assert any(getattr(r, "party", "") == "client 0" for r in out.rejected), out.rejected
    assert np.allclose(out.result, 3.0, atol=1e-2)


def test_control_an_honest_length_box_key_of_another_point_is_sealed_to():
    """Control for the attack above: a 32-byte key of the large subgroup (the base point 9), validly signed, is a box key
    like any other; the round releases the sum."""
    out = secure_sum(np.ones((3, 4)), protocol=byzantine_box_key(bytes([9]) + bytes(31)), seed=1)
    assert np.allclose(out.result, 3.0, atol=1e-2) and out.rejected == ()


def test_the_key_holder_refuses_a_low_order_box_key_before_moving_its_model(sum_keys):
    """Was a break (review 19): the key holder moved its model and set released before sealing failed; it refuses unusable box keys before decrypting, and moves its model only with a recorded release. The key holder verifies each box key's signature before decrypting (`_recipients`), but not that the key is a
    point X25519 can use: a MODEL request carrying client 0's signed key 0 must be refused, typed, with its model, its
    `released` and its ledger as they were (`_finish` keeps `holder.model` whenever `released` is set)."""
    d, x = 8, np.ones((2, 8))
    signers = [Signer.generate(SeededRandomness(19).fork(str(i))) for i in range(2)]
    cts = [sum_keys.public.encrypt(row).to_bytes() for row in x]
    manifest = {i: (digest(cts[i]), signers[i].sign(signed_message(S, i, 2, digest(cts[i])))) for i in range(2)}
    boxes = encode_box_keys({0: (LOW_ORDER, signers[0].sign(box_key_message(S, 0, LOW_ORDER)))})
    holder = KeyHolder(sum_keys.secret, KeyHolderPolicy("hidden", min_clients=2), session=S,
                       client_keys={i: s.public_bytes() for i, s in enumerate(signers)}, length=d, model=sum_keys.secret.encrypt(np.zeros(d)))
    request = DecryptRequest(Target.MODEL, manifest, b"", dict(enumerate(cts)), boxes)
    try:
        holder.handle(encode_frame(Frame(Kind.DECRYPT_REQUEST, S, SERVER, KEY_HOLDER, request.encode())))
    except Refused:  # the model did not move on with a release nobody received
        assert holder.released is None and np.max(np.abs(sum_keys.secret.decrypt(holder.model))) < 1e-3
    else:  # or it released (client 0 left without a box), and its ledger says so
        assert holder.ledger.rounds["local/1"]["released"] == [int(Target.MODEL)]


def test_a_robust_stack_that_builds_is_not_refused_by_its_clients_for_its_clip():
    """Was a break (review 19): ckks-robust had no build check; one clipped input must encode (check_build_headroom). check_encoding in robust rounds checks that |x| + error < ckks_encodable (2**98 at ckks-8192); the build of
    `clip(bound=c) > ckks-robust(norm_bound=100)` checks nothing of c, so c = 2 x 2**98 builds and a client whose update
    has one coordinate at 1.5 x 2**98 (norm below the clip) raises Refused: the round aborts for an input the norm check
    would simply have rejected. ckks and hidden-state refuse such a clip at build (`check_build_headroom`)."""
    limit = ckks_encodable(preset("ckks-8192"))
    try:
        stack = build(parse(f"clip(bound={2 * limit!r}) > ckks-robust(norm_bound=100, f=1)"), StackContext(dim=8, participants=5))
    except StackError:
        return
    row = np.zeros(8)
    row[0] = 1.5 * limit
    stack.inner.check_encoding(5, row, 0)


def test_a_hidden_state_stack_that_builds_releases_its_first_round_at_the_clip(sum_keys):
    """Was a break (review 19): the build checked w_0 and one input apart; it checks the first model the key holder re-encrypts. ckks-8192-sum, H its headroom: w_0 = 0.495 H on a full chunk, clip 0.5 H, 2 participants (weight 1/2). The build
    passes (0.5 H + 0.495 H < H, and 0.495 H, 0.25 H each below H / 2); two honest inputs of norm 0.5 H in w_0's direction
    (0.5 H / 64 a coordinate) make w_1 = 0.503 H, past what one encryption holds: the key holder refuses to re-encrypt it.
    The build could check w_0 + n x weight x clip + error against ckks_encodable (the first model is one encryption)."""
    limit, d = ckks_headroom(sum_keys.public.params), 4096
    try:
        stack = build(parse(f"clip(bound={0.5 * limit!r}) > hidden-state"), StackContext(dim=d, participants=2, initial=np.full(d, 0.495 * limit)))
    except StackError:
        return
    stack.inner.use_secret_context(sum_keys.secret)
    out = secure_sum(np.full((2, d), 0.5 * limit / 64), protocol=stack, seed=8)
    assert np.allclose(out.result, (0.495 + 0.5 / 64) * limit, atol=1.0)


@pytest.mark.parametrize("kind", ["ckks", "bfv", "hidden", "robust"])
@pytest.mark.parametrize("public", [None, ["session"], {"session": "00" * 8, "d": 8, "n": 10**5000},
                                    {"session": 10**5000, "d": 8, "n": 2}, {"session": "00" * 8, "d": np.arange(8), "n": 2}],
                         ids=["null", "a list", "n of 5000 digits", "session of 5000 digits", "d an array"])
def test_a_client_refuses_any_public_parameters_typed(kind, public):
    """Was a break (review 19): announced() called .get and str() on anything; it refuses non-mappings and describes huge ints by bit length. The aggregator's public parameters are untrusted: whatever they are, a client's role refuses them typed. (Over
    Flower, `fl.flower_engine._join` refuses a non-dict first and json.loads refuses 5000-digit ints; the in-process
    client_role, the API the engines call, does not.)"""
    protocol = {"ckks": CKKSAggregation, "bfv": BFVAggregation, "robust": lambda: CKKSRobust(norm_bound=1.0),
                "hidden": lambda: HiddenStateCKKS(initial=np.zeros(8))}[kind]()
    row = np.zeros(8, dtype=np.int64) if kind == "bfv" else np.zeros(8)
    with pytest.raises(ProtocolError):
        protocol.client_role(0, row, public, SeededRandomness(6), {}, identity=ClientIdentity.simulated(0))


# ---------------------------------------------------------------------------------------------------------- held


@pytest.mark.parametrize("kind", ["ckks", "bfv", "hidden", "robust"])
@pytest.mark.parametrize("public", [{"session": "00" * 8, "d": 8, "n": True}, {"session": "00" * 8, "d": 8, "n": 2.0},
                                    {"session": "00" * 8, "d": 8, "n": float("nan")}, {"session": "00" * 8, "d": 8, "n": 2**32},
                                    {"session": "\u0660" * 16, "d": 8, "n": 2}, {"session": "00" * 8, "d": True, "n": 2},
                                    {"session": "00" * 8, "d": "8", "n": 2}, {"session": "00" * 8, "d": 2**70, "n": 2}],
                         ids=["n True", "n 2.0", "n NaN", "n 2**32", "session of Arabic-Indic digits", "d True", "d '8'", "d 2**70"])
def test_held_json_values_of_the_wrong_type_are_refused_typed(kind, public):
    """What JSON can carry (bool, float, NaN, big ints, unicode digits, strings) in each field: every client role refuses
    it with Refused naming the field (Python's str.isdigit-style traps: the session check lists the hex characters)."""
    protocol = {"ckks": CKKSAggregation, "bfv": BFVAggregation, "robust": lambda: CKKSRobust(norm_bound=1.0),
                "hidden": lambda: HiddenStateCKKS(initial=np.zeros(8))}[kind]()
    row = np.zeros(8, dtype=np.int64) if kind == "bfv" else np.zeros(8)
    with pytest.raises(Refused, match="announce"):
        protocol.client_role(0, row, public, SeededRandomness(7), {}, identity=ClientIdentity.simulated(0))


def _drop_key_holder_reply(src, dst, frame):
    return [] if (src, dst) == (wire.KEY_HOLDER, wire.SERVER) else [frame]


@pytest.mark.parametrize("recompute", [True, False])
def test_held_a_lost_reply_then_an_honest_round_releases_one_consistent_model(recompute):
    """Round 1 (inputs 1, three clients) loses the key holder's reply; round 2 (inputs 10). The in-process key holder kept
    its released model (review 9): with recompute the next release is 3 + 30 = 33 (round 1 is in the model, as the
    accounting says an aborted round may be); without it the key holder decrypts the aggregator's Enc(w) + sum, and
    the aggregator never adopted round 1: 30. Either way one model, never round 1 twice; round 3 then adds 30 again."""
    hidden = HiddenStateCKKS(initial=np.zeros(4), weight=1.0, min_clients=1, recompute=recompute)
    with pytest.raises(ProtocolError):
        secure_sum(np.ones((3, 4)), protocol=hidden, seed=1, tamper=_drop_key_holder_reply)
    first = 33.0 if recompute else 30.0
    assert np.allclose(secure_sum(np.full((3, 4), 10.0), protocol=hidden, seed=2).result, first, atol=1e-2)
    assert np.allclose(secure_sum(np.full((3, 4), 10.0), protocol=hidden, seed=3).result, first + 30.0, atol=1e-2)


def test_held_a_refused_request_moves_neither_model():
    """The key holder refuses round 1 (it asks 3 signed inputs, the aggregator has 2: its policy is its own); both models
    stay at w_0, with and without recompute, and the next honest round releases w_0 + its sum."""
    for recompute in (True, False):
        hidden = HiddenStateCKKS(initial=np.full(4, 5.0), weight=1.0, min_clients=2, recompute=recompute,
                                 holder_policy=KeyHolderPolicy("hidden", min_clients=3, recompute=recompute))
        with pytest.raises(Refused):
            secure_sum(np.ones((2, 4)), protocol=hidden, seed=4)
        hidden.holder_policy = None
        assert np.allclose(secure_sum(np.ones((2, 4)), protocol=hidden, seed=5).result, 7.0, atol=1e-2)


@pytest.mark.parametrize("bits, scale", [((50, 40, 30), 30), ((40, 20), 25), ((30, 60), 25)],
                         ids=["special prime below the data primes", "two primes, small special", "data prime below the special"])
def test_held_the_encodable_bound_is_where_seal_refuses_outside_the_presets(bits, scale):
    """`ckks_encodable` at parameter sets that are no preset (unequal special prime, one data prime of 30 bits): a full
    chunk of 0.999 x the bound encodes, 1.001 x is refused by SEAL."""
    params = HeParameters("ckks", 4096 if bits == (40, 20) else 8192, bits, scale_bits=scale)
    context, limit = HeContext.generate(params), ckks_encodable(params)
    context.encrypt(np.full(params.slots, 0.999 * limit))
    with pytest.raises(ValueError, match="too large"):
        context.encrypt(np.full(params.slots, -1.001 * limit))
