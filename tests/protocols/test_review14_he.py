"""Adversarial review 14 of the HE family (CKKS/BFV with a key holder, CKKS robust, hidden state), of main at
1d6ae88. Each test was a strict xfail of one root cause, its body asserting the guarantee sentence; all are fixed
(each docstring says what the break was, and where the sentence was made true instead of the code).
Earlier reviews' attacks (a Byzantine (0, K) ciphertext, requests that decrypt one client, Krum steering, ledger
replays, malformed ciphertexts) are in test_he_review.py, test_he_key_holder.py, test_he_validation.py and not
repeated here."""

import numpy as np
import pytest

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.errors import ProtocolError
from protocols.core.messages import Kind
from protocols.core.stack import StackContext, build, parse
from protocols.core.wire import KEY_HOLDER, SERVER, decode_frame
from protocols.he.aggregation import CKKSAggregation
from protocols.he.hidden_state import HiddenStateCKKS


def _released(frames: list[bytes]) -> np.ndarray:
    """The values of the last PLAINTEXT frame the key holder sent the aggregator (as the aggregator receives it)."""
    frame = decode_frame(frames[-1], party="test", stage="test")
    assert frame.kind == Kind.PLAINTEXT
    return np.frombuffer(frame.payload[4:], "<f8")


def _key_holder_replies(frames: list[bytes]):
    def wire(src, dst, sealed):
        if src == KEY_HOLDER and dst == SERVER:
            frames.append(sealed[:-32])
        return [sealed]
    return wire


# --- Claim (HeAggregation.guarantee): numeric_error = bound + 6 x noise bounds |released - sum of the inputs| for
# --- every input the round accepts (CKKS: finite floats; `check_inputs` checks nothing else) ------------------------


@pytest.mark.parametrize("protocol", ["sum", "hidden-state"])
def test_an_accepted_ckks_round_is_within_its_numeric_error_or_refused_with_a_typed_error(protocol):
    """Was a break (review 14): a sum beyond the CKKS headroom (2**19 at ckks-8192-sum) wrapped by 2**20 silently."""
    n, d = 8, 4096  # a full chunk: every slot at 1e5 puts 1e5 * 2**40 into the constant coefficient
    x = np.full((n, d), 1e5)
    p = CKKSAggregation(min_clients=2) if protocol == "sum" else HiddenStateCKKS(initial=np.zeros(d), weight=1.0, min_clients=2)
    try:
        out = secure_sum(x, protocol=p, seed=1)
    except (ValueError, ProtocolError) as exc:  # refused before encryption, naming the range: what a fix may do
        assert "too large" not in str(exc), f"TenSEAL's own encoder error, not a check of the round: {exc}"
        return
    error = np.max(np.abs(out.result - x.sum(axis=0)))
    assert error <= out.reports[0].guarantee.numeric_error, f"error {error} > numeric_error {out.reports[0].guarantee.numeric_error}"


# --- Claim (HeAggregation.guarantee, BFV): the aggregator learns "the aggregate of the m included inputs"; "sums wrap
# --- mod 2**bits as the ring does". Attack: the aggregator reads the key holder's PLAINTEXT reply itself -------------


def test_a_bfv_release_is_the_ring_sum_and_no_more():
    """Was a break (review 14): the BFV key holder released the integer sum, which counts each coordinate's negative inputs."""
    n, d, bits = 5, 8, 32
    x = np.random.default_rng(14).normal(0, 0.3, (n, d)).astype(np.float32)
    protocol = build(parse(f"clip(bound=1) > discretize(scale=1000.0) > bfv(bits={bits})"), StackContext(dim=d, participants=n))
    frames: list[bytes] = []
    secure_sum(x, protocol=protocol, seed=3, wire=_key_holder_replies(frames))
    released = _released(frames)
    negatives = (x < 0).sum(axis=0)  # discretize(scale=1000) keeps signs: a negative value is encoded as 2**32 - |v|
    ring_sum = released.astype(np.int64) % 2**bits
    centred = np.where(ring_sum >= 2 ** (bits - 1), ring_sum - 2**bits, ring_sum)  # the decoded sum, small
    counted = (released.astype(np.int64) - centred) // 2**bits  # what the integer sum tells beyond it
    assert not (np.array_equal(counted, negatives) and negatives.any()), \
        f"the release tells the aggregator how many clients are negative in each coordinate: {counted}"
    assert np.all((released >= 0) & (released < 2**bits)), "the key holder released more than the sum mod 2**bits"


# --- Claim (CKKSRobust report): collusion "any number of clients whose ciphertexts are honestly generated"; the
# --- server learns the flooded pairwise distances. Attack: d + 1 clients that collude with the aggregator encrypt,
# --- honestly, the origin and t e_j; their released distances to the victim give x_v by trilateration ---------------


def test_colluding_clients_cannot_read_a_victims_input_off_the_released_distances(robust_keys):
    """Was a break (review 14): d + 1 colluding clients locate a victim's input from the released distances, while the
    collusion text claimed any number of clients. The attack stands (the distances are what the rule needs); the
    collusion text now states it, which the test checks beside the attack."""
    from protocols.he.key_holder import accepted_distances
    from protocols.he.robust import CKKSRobust

    d, t = 3, 1.0  # the colluders at the norm bound: the noise on x_j is std noise / (sqrt(2) t)
    victim = np.array([0.31, -0.42, 0.17])
    x = np.vstack([victim, np.zeros(d), t * np.eye(d)])  # client 0 the victim; 1: the origin; 2..d+1: t e_j
    protocol = CKKSRobust(rule="multi_krum", f=1, norm_bound=1.0, min_clients=2)
    protocol.use_secret_context(robust_keys.secret)
    frames: list[bytes] = []
    out = secure_sum(x, protocol=protocol, seed=5, wire=_key_holder_replies(frames))
    accepted, dist = accepted_distances(list(range(len(x))), _released(frames[:1]))
    assert accepted == list(range(len(x)))
    guess = (dist[0, 1] + t**2 - dist[0, 2:]) / (2 * t)
    noise = out.reports[0].guarantee.parameters["distance_release_noise_std"]
    assert np.max(np.abs(guess - victim)) < 4 * noise / t  # the attack works: the victim's input, within ~6 noise stddevs
    g = out.reports[0].guarantee
    text = " ".join((g.collusion, g.server_learns, g.notes))
    assert "distances" in g.collusion or "trilaterat" in text or "d + 1" in text, g.collusion


# --- Claim (CKKSRobust report): dropout_tolerance = n - 2f - 1. Attack: the round's own parameters m (Multi-Krum's
# --- count) and min_clients need more survivors; drop exactly the stated tolerance -----------------------------------


@pytest.mark.parametrize("fields", [{"m": 4, "min_clients": 1}, {"min_clients": 4}])
def test_a_robust_round_survives_its_stated_dropout_tolerance(robust_keys, fields):
    """Was a break (review 14): dropout_tolerance was n - 2f - 1 whatever m and min_clients; now n minus what the round
    needs: max(2f + 1, min_clients, m or min_clients + f (Multi-Krum selects accepted - f)), 1 for Krum's selection."""
    from protocols import DropoutSchedule, Stage
    from protocols.he.robust import CKKSRobust

    n, d = 6, 8
    x = np.random.default_rng(15).normal(0, 0.3 / np.sqrt(d), (n, d))
    protocol = CKKSRobust(rule="multi_krum", f=1, norm_bound=1.0, **fields)
    protocol.use_secret_context(robust_keys.secret)
    tolerance = secure_sum(x, protocol=protocol, seed=6).reports[0].guarantee.dropout_tolerance
    dropped = DropoutSchedule({i: Stage.MASKED_INPUT for i in range(tolerance)})
    try:
        out = secure_sum(x, protocol=protocol, seed=7, dropouts=dropped)
    except ProtocolError as exc:
        pytest.fail(f"{tolerance} dropouts (the stated tolerance) stopped the round: {exc!r}")
    assert len(out.included) >= 1


# --- Claim (HeAggregation.guarantee): "the key holder learns the same [the aggregate], nothing else"; its DP view is
# --- "aggregate" (protocols.he.aggregation.HE_VIEWS, hidden-state's traits; README: its epsilon is the composition of
# --- the rounds' aggregate noise). Attack: a curious key holder decrypts the inputs that recompute relays to it ------


@pytest.mark.parametrize("stack", ["clip(bound=1) > ckks", "hidden-state"])
def test_a_curious_key_holder_sees_no_more_than_the_aggregate(stack):
    """Was a break (review 14): with recompute the key holder could decrypt every input, but its view was "aggregate"
    and the report said it learns the sum, "nothing else". The statement is now the true one (view "own share",
    `server_learns` says it can decrypt each input); the attack stays as the test's first half."""
    from protocols.core.stack import traits
    from protocols.core.wire import Reader
    from protocols.he.messages import DecryptRequest
    from secagg.he import EncryptedVector

    n, d = 3, 6
    x = np.random.default_rng(16).normal(0, 0.1, (n, d))
    protocol = build(parse(stack), StackContext(dim=d, participants=n, initial=np.zeros(d)))
    he = protocol if stack == "hidden-state" else protocol.inner
    requests: list[bytes] = []

    def wire(src, dst, sealed):
        if src == SERVER and dst == KEY_HOLDER:
            requests.append(sealed[:-32])
        return [sealed]

    out = secure_sum(x, protocol=protocol, seed=4, wire=wire)
    frame = decode_frame(requests[-1], party="test", stage="test")
    request = DecryptRequest.parse(Reader(frame.payload, party="test", stage="test"), n=n, max_bytes=1 << 31)
    weight = getattr(he, "weight", 1.0)
    seen = [he.keys.secret.decrypt(EncryptedVector.from_bytes(he.keys.secret, request.inputs[u], length=d)) / weight for u in request.inputs]
    assert np.max(np.abs(np.array(seen) - x[sorted(request.inputs)])) < 1e-3  # the attack: every input, one by one
    view = traits(parse(stack)).observers["key holder"]
    learns = next(r.guarantee.server_learns for r in out.reports if r.layer == he.name)
    assert view != "aggregate" and "nothing else" not in learns, (view, learns)


# --- Claim (policy, README): the earlier reviews' fix "the aggregator cannot make the key holder decrypt one client":
# --- every release lists >= min_clients signed inputs, min_clients = 1 only for Krum, "which releases one client's
# --- input". Attack: the ckks-robust layer's default policy, with multi_krum; the aggregator lists the victim alone --


def test_the_default_multi_krum_policy_never_releases_one_honest_input(robust_keys):
    """Was a break (review 14): the ckks-robust layer's min_clients defaulted to 1 for multi_krum too (now 2; 1 for krum)."""
    from protocols.core.errors import Refused
    from protocols.core.wire import Frame, encode_frame
    from protocols.he.key_holder import KeyHolder
    from protocols.he.messages import DecryptRequest, Target, digest, signed_message
    from protocols.he.policy import session_of
    from secagg.randomness import SeededRandomness
    from secagg.signatures import Signer

    d = 8
    layer = build(parse("ckks-robust(rule=multi_krum, f=0, norm_bound=1.0)"), StackContext(dim=d, participants=4))
    victim = np.random.default_rng(17).normal(0, 0.2, d)
    session, signer = session_of(1, b"r14v"), Signer.generate(SeededRandomness(14).fork("victim"))
    ct = robust_keys.public.encrypt(victim).to_bytes()
    manifest = {0: (digest(ct), signer.sign(signed_message(session, 0, 4, digest(ct))))}
    holder = KeyHolder(robust_keys.secret, layer.policy, session=session, client_keys={0: signer.public_bytes(), 1: b"", 2: b"", 3: b""},
                       length=d)
    frame = lambda target: encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER,  # noqa: E731
                                              DecryptRequest(target, manifest, b"", {0: ct}).encode()))
    try:
        holder.handle(frame(Target.SCALARS))
        released = np.frombuffer(holder.handle(frame(Target.SELECTED_SUM))[4:], "<f8")
    except Refused:
        return  # what a policy of min_clients >= 2 does
    pytest.fail(f"the key holder released the victim's input alone (max error {np.max(np.abs(released - victim)):.2g})")


# --- Claim (README, protocols.he.key_holder): "a policy whose honest squared distances (2 norm_bound)**2 could wrap,
# --- norm_bound >= 362 at ckks-8192, is refused at setup" -------------------------------------------------------------


def test_the_stated_headroom_threshold_is_refused():
    """Was a break (review 14): "norm_bound >= 362 is refused" but 362 was accepted (the check was (2 nb)**2 < 2**19);
    the check now bounds the accepted norms' distances, (2.02 nb)**2, and the sentence states its threshold, sqrt(2**19) / 2.02."""
    import inspect

    from protocols.he import key_holder
    from protocols.he.policy import KeyHolderPolicy
    from secagg.he_params import preset

    with pytest.raises(ValueError, match="headroom"):
        KeyHolderPolicy("robust", norm_bound=362.0).check_headroom(preset("ckks-8192").headroom_bits)
    assert "norm_bound >= sqrt(2**19) / 2.02 = 358.45 at ckks-8192" in " ".join(inspect.getdoc(key_holder).split())
    stated = 2**9.5 / 2.02  # 358.454...
    with pytest.raises(ValueError, match="headroom"):
        KeyHolderPolicy("robust", norm_bound=stated).check_headroom(preset("ckks-8192").headroom_bits)
    KeyHolderPolicy("robust", norm_bound=stated - 0.01).check_headroom(preset("ckks-8192").headroom_bits)


# --- Claim (TRUSTED_SUM, README): "without recompute the key holder decrypts the aggregator's sum: min_clients holds
# --- only against an aggregator that adds honestly". Attack: the aggregator alone (every client honest) sends, with a
# --- valid manifest, a payload it forged: (c0, c1) = (0, K) | (0, K X^(N/2)); the release is K s, flooded -----------


@pytest.mark.parametrize("round_type", ["sum", "hidden"])
def test_without_recompute_a_deviating_aggregator_cannot_recover_the_secret_key(sum_keys, round_type):
    """Was a break (review 14): without recompute an active aggregator recovers the secret key with a forged (0, K)
    payload, and TRUSTED_SUM said only that min_clients is lost. The attack cannot be stopped there (the key holder
    cannot check the sum without the inputs); TRUSTED_SUM (and the README) now state it and the threat model
    (honest-but-curious aggregator), which the test checks."""
    from protocols.core.errors import Refused
    from protocols.he.key_holder import TRUSTED_SUM, KeyHolder
    from protocols.he.messages import DecryptRequest, Target
    from protocols.he.policy import KeyHolderPolicy
    from protocols.he.release import box_key_message, encode_box_keys, open_box, parse_model_release
    from secagg.agreement import X25519Agreement
    from secagg.randomness import SeededRandomness
    from tests.protocols.he_forge import forged_vector, monomial
    from tests.protocols.test_he_review import S1, N, _frame, _key_from_release, _manifest, _predicts_decryption, _signers, _values

    K = 2**50
    x = np.random.default_rng(18).normal(0, 1 / np.sqrt(N), (2, N))
    signers = _signers(2)
    cts = {i: sum_keys.public.encrypt(row).to_bytes() for i, row in enumerate(x)}  # two honest clients
    forged = forged_vector(sum_keys.public, [monomial(N, 0, K), monomial(N, N // 2, K)], N)
    box = X25519Agreement.generate(SeededRandomness(18))  # hidden rounds: client 1 colludes to open its box
    extra = encode_box_keys({1: (box.public_bytes(), signers[1].sign(box_key_message(S1, 1, box.public_bytes())))}) if round_type == "hidden" else b""
    target = Target.SUM if round_type == "sum" else Target.MODEL
    holder = KeyHolder(sum_keys.secret, KeyHolderPolicy(round_type, recompute=False), session=S1,
                       client_keys={i: s.public_bytes() for i, s in enumerate(signers)}, length=N,
                       model=sum_keys.secret.encrypt(np.zeros(N)) if round_type == "hidden" else None)
    try:
        reply = holder.handle(_frame(S1, DecryptRequest(target, _manifest(S1, signers, cts), forged, None, extra)))
    except Refused:
        return  # a key holder that checks the payload is the sum of the listed inputs
    if round_type == "hidden":
        _, sealed = parse_model_release(reply, 2, N, 1 << 24, party="test", stage="test")
        released = open_box(box, S1, 1, sealed[1], N, party="test", stage="test")
    else:
        released = _values(reply)
    recovered = _predicts_decryption(sum_keys, _key_from_release(released, 2.0**40 / K))
    assert not recovered or "secret key" in TRUSTED_SUM, f"the aggregator alone recovered the secret key; TRUSTED_SUM says: {TRUSTED_SUM}"


# --- Held (regression): a Byzantine client adds a purely imaginary plaintext of 2**95 to its ciphertext (every check
# --- passes: size 2, top level, scale 2**40, in range); the key holder's conjugation drops the imaginary parts, the
# --- sum's decryption reads real parts: the round completes within numeric_error and at worst excludes client 0 -----


def test_huge_imaginary_parts_in_a_ciphertext_neither_abort_nor_skew_a_robust_round(robust_keys):
    from dataclasses import dataclass

    import tenseal.sealapi as seal

    from protocols.he.robust import CKKSRobust
    from secagg.he_distances import save_ciphertext
    from tests.protocols.he_forge import vector_of

    @dataclass
    class Imaginary(CKKSRobust):
        def _ciphertext(self, i, row):
            if i != 0:
                return super()._ciphertext(i, row)
            public = self.keys.public
            ct = public.encrypt(row).chunks[0].ciphertext()[0]
            sctx, plain = public.tenseal.seal_context().data, seal.Plaintext()
            seal.CKKSEncoder(sctx).encode([complex(0, 2.0**95)] * public.params.slots, ct.parms_id(), ct.scale, plain)
            seal.Evaluator(sctx).add_plain_inplace(ct, plain)
            return vector_of(public, [save_ciphertext(ct)], len(row))

    d = 8
    x = np.random.default_rng(19).normal(0, 0.3 / np.sqrt(d), (6, d))
    protocol = Imaginary(rule="multi_krum", f=1, norm_bound=1.0, min_clients=2)
    protocol.use_secret_context(robust_keys.secret)
    out = secure_sum(x, protocol=protocol, seed=2)
    assert set(out.included) <= set(range(6)) and len(out.included) == 4
    assert np.max(np.abs(out.result - x[list(out.included)].sum(axis=0))) <= out.reports[0].guarantee.numeric_error


# --- Claim (HeAggregation.guarantee): numeric_error = bound + 6 x 2**flood_bits x bound, "a remote [key holder] states its
# --- own". Attack: none needed; a Flower key-holder node whose he-flood-bits differs from the run's (check_asked compares
# --- round type and the robust rule's fields only) ----------------------------------------------------------------------


def test_the_reported_numeric_error_bounds_a_remote_key_holders_release(sum_keys):
    """Was a break (review 14): the aggregator reported numeric_error from its own flood_bits while a remote key holder
    flooded with its own (20: errors ~1000x the stated bound). A report cannot know a remote policy's noise, so the key
    holder now refuses an aggregator whose asked flood_bits (or min_clients, recompute) differs from its own, naming the
    field and both values; the test checks that refusal, and that a matching node's release is within the report."""
    from protocols.core.errors import Refused
    from protocols.core.pki import KeyDirectory
    from protocols.he.policy import KeyHolderPolicy, ReleaseLedger
    from tests.protocols.test_he_split import D, _round

    protocol = CKKSAggregation(min_clients=2)  # flood_bits 10, as the run states it
    protocol.use_secret_context(sum_keys.secret)
    x = np.random.default_rng(20).normal(0, 0.1, (4, D))
    ledger = ReleaseLedger()

    def node(policy):  # the key-holder node: its own policy from its node config
        def make(params):
            keys = dict(enumerate(KeyDirectory().for_roster(params["roster"])))
            return protocol.key_holder(params, client_keys=keys, policy=policy, ledger=ledger)
        return make

    for field, value, asked in (("flood_bits", 20, 10), ("min_clients", 3, 2)):
        with pytest.raises(Refused, match=f"{field}={asked}.*{field}={value}"):
            _round(protocol, x, remote=(node(KeyHolderPolicy("sum", **{"min_clients": 2, "flood_bits": 10, field: value})), {}))
    out, _ = _round(protocol, x, remote=(node(KeyHolderPolicy("sum", min_clients=2, flood_bits=10)), {}))
    error, stated = np.max(np.abs(out.result - x.sum(axis=0))), out.reports[0].guarantee.numeric_error
    assert error <= stated, f"released error {error:.3g} > reported numeric_error {stated:.3g}"
