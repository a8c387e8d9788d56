"""SEAL's CKKS encoder refuses one encoding whose coefficients pass 2**(data bits - 2) (`secagg.he.ckks_encodable`: 2**18 at
ckks-8192-sum, half its headroom 2**19): a sum may reach the headroom, one encryption may not. Found while
fixing review 17: a client of a round announced as n = 1 passed its headroom check and then hit SEAL's untyped
ValueError, and the hidden-state key holder's re-encryption of a model past the bound did the same."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.core.errors import Refused
from protocols.core.messages import Kind
from protocols.core.stack import StackContext, StackError, build, parse
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame
from protocols.he.aggregation import CKKSAggregation
from protocols.he.hidden_state import HiddenStateCKKS
from protocols.he.key_holder import KeyHolder
from protocols.he.messages import DecryptRequest, Target, digest, signed_message
from protocols.he.policy import KeyHolderPolicy, session_of
from secagg.he import HeContext, ckks_encodable, ckks_headroom, fresh_error_bound
from secagg.he_params import preset
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer

S = session_of(1, b"enc!")


@pytest.fixture(scope="module")
def contexts():
    """One key set a CKKS preset (no Galois keys: encoding is all this file needs)."""
    return {name: HeContext.generate(preset(name)) for name in ("ckks-8192-sum", "ckks-8192", "ckks-16384")}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["ckks-8192-sum", "ckks-8192", "ckks-16384"]), chunks=st.sampled_from([0.0001, 0.05, 1, 1.3]),
       sign=st.sampled_from([1.0, -1.0]))
def test_the_encodable_bound_is_where_seal_refuses_a_constant_vector(contexts, name, chunks, sign):
    """At every preset a constant vector (every coefficient of a full chunk its value) encodes just below the bound and
    SEAL refuses it just above, with a full chunk (d >= slots); smaller supports spread the value and encode further."""
    context = contexts[name]
    limit, d = ckks_encodable(context.params), max(1, int(chunks * context.params.slots))
    assert name != "ckks-8192-sum" or limit == pytest.approx(ckks_headroom(context.params) / 2, rel=1e-12)
    context.encrypt(np.full(d, sign * 0.999 * limit))
    if d >= context.params.slots:
        with pytest.raises(ValueError, match="too large"):
            context.encrypt(np.full(d, sign * 1.001 * limit))


def test_a_client_announced_alone_refuses_an_input_seal_cannot_encode(sum_keys):
    """n = 1 (a min_clients = 1 round): the sum's headroom would allow 0.6 x 2**19, one encoding does not."""
    protocol = CKKSAggregation(min_clients=1)
    protocol.use_secret_context(sum_keys.secret)
    x = np.full(4096, 0.6 * ckks_headroom(protocol.params))
    with pytest.raises(Refused, match="the most one encoding"):
        protocol.check_encoding(1, x, 0)


def test_a_hidden_model_past_what_one_encryption_holds_is_refused_not_a_seal_error(sum_keys):
    """The key holder re-encrypts the decrypted model each round: a model of 0.3 and inputs of 0.15 x 2 of the headroom
    (peak 0.6 x 2**19 on a full chunk: no wrap, but past what one encryption holds) made that re-encryption raise SEAL's
    ValueError, with or without recompute; it is a typed refusal now, nothing released."""
    limit = ckks_headroom(sum_keys.public.params)
    d = 4096
    x = np.full((2, d), 0.15 * limit)
    signers = [Signer.generate(SeededRandomness(23).fork(str(i))) for i in range(2)]
    cts = [sum_keys.public.encrypt(row).to_bytes() for row in x]
    manifest = {i: (digest(cts[i]), signers[i].sign(signed_message(S, i, 2, digest(cts[i])))) for i in range(2)}
    for recompute in (True, False):
        model = sum_keys.secret.encrypt(np.full(d, 0.3 * limit))
        total = sum_keys.secret.encrypt(np.full(d, 0.3 * limit))
        holder = KeyHolder(sum_keys.secret, KeyHolderPolicy("hidden", min_clients=2, recompute=recompute), session=S,
                           client_keys={i: s.public_bytes() for i, s in enumerate(signers)}, length=d, model=model)
        payload = b"" if recompute else total.add_(sum_keys.public.encrypt(x.sum(axis=0))).to_bytes()
        request = DecryptRequest(Target.MODEL, manifest, payload, dict(enumerate(cts)) if recompute else None)
        with pytest.raises(Refused, match="cannot be re-encrypted"):
            holder.handle(encode_frame(Frame(Kind.DECRYPT_REQUEST, S, SERVER, KEY_HOLDER, request.encode())))
        assert holder.released is None and holder.ledger.rounds.get("local/1", {}).get("released", []) == []
        assert np.max(np.abs(sum_keys.secret.decrypt(holder.model) - 0.3 * limit)) < 1e-3  # its model is as it was


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), j=st.integers(0, 15), hidden=st.booleans(), edge=st.sampled_from(["headroom", "encodable"]))
def test_a_stack_that_builds_is_not_refused_by_its_clients_for_its_clip(n, j, hidden, edge):
    """At build the clip is checked with the terms checked at run time: each client's (`check_encoding`: n x |w| clip +
    (n + 2) x error < headroom, |w| clip + error below what one encoding holds) and, for the hidden model, the key
    holder's re-encryption of the first model (w_0 = 0 here: n x |w| clip + (n + 2) x error below what one encoding
    holds; review 19). A clip j error bounds under either edge builds exactly when all of them pass (the build check had
    left out the error terms)."""
    protocol = CKKSAggregation(min_clients=1)
    limit, error, encodable = ckks_headroom(protocol.params), fresh_error_bound(protocol.params), ckks_encodable(protocol.params)
    weight = 1.0 / n if hidden else 1.0
    clip = ((limit - j * error) / n if edge == "headroom" else encodable - (j - 2) * error) / weight
    ctx = StackContext(dim=4, participants=n, initial=np.zeros(4))
    try:
        built = build(parse(f"clip(bound={clip!r}) > {'hidden-state(min_clients=1)' if hidden else 'ckks(min_clients=1)'}"), ctx) is not None
    except StackError:
        built = False
    try:
        (HiddenStateCKKS(initial=np.zeros(4), weight=weight, min_clients=1) if hidden else CKKSAggregation(min_clients=1)).check_encoding(n, np.full(4, clip), 0)
        passes = True
    except Refused:
        passes = False
    first_model = n * weight * clip + (n + 2) * error < encodable if hidden else True
    assert built == (passes and first_model), f"n = {n}, {edge} - {j} errors: built {built}, clients pass {passes}, first model {first_model}"
