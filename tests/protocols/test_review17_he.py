"""Review 17 (2): the CKKS sum's headroom rests on the n the aggregator announces to the clients.

Was a break (review 17): `HeAggregation.client_role` checks n x max |x| against the headroom with n = public["n"], a
number only the aggregator states. An aggregator that announced n = 1 to 4 clients whose inputs fill 0.4 of the
headroom got 4 signed ciphertexts that each passed the client's check; the key holder released their sum wrapped mod
2**20 (-209715.2 for 838860.8, numeric_error 1.7e-7), and the hidden model's own headroom check, reading the already
wrapped sum, passed too. Now each client signs the n it was announced (`protocols.he.messages.signed_message`) and the
key holder verifies with its own round size, the roster's: a listed input was checked against n >= the manifest.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocols.core.errors import Refused
from protocols.core.messages import Kind
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame
from protocols.he.aggregation import BFVAggregation, CKKSAggregation
from protocols.he.key_holder import KeyHolder
from protocols.he.messages import DecryptRequest, Target, digest, signed_message
from protocols.he.policy import KeyHolderPolicy, session_of
from secagg.he import ckks_encodable, ckks_headroom, fresh_error_bound
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer

S = session_of(1, b"r17h")


def _sum_request(sum_keys, x, announced, seed, target=Target.SUM):
    """Signers and the request of an aggregator that announced `announced[i]` clients to client i (each signs it)."""
    signers = [Signer.generate(SeededRandomness(seed).fork(str(i))) for i in range(len(x))]
    cts = [sum_keys.public.encrypt(row).to_bytes() for row in x]
    manifest = {i: (digest(cts[i]), signers[i].sign(signed_message(S, i, announced[i], digest(cts[i])))) for i in range(len(x))}
    keys = {i: s.public_bytes() for i, s in enumerate(signers)}
    return keys, DecryptRequest(target, manifest, b"", dict(enumerate(cts)))


def _handle(holder, request):
    return holder.handle(encode_frame(Frame(Kind.DECRYPT_REQUEST, S, SERVER, KEY_HOLDER, request.encode())))


def test_a_sum_of_inputs_checked_against_an_announced_n_below_the_true_count_is_refused(sum_keys):
    """Was a break (review 17): a client signs the n it was announced; the key holder verifies with its own round size
    (the roster's), so 4 inputs each checked against n = 1 are refused instead of released wrapped. The attack: an
    aggregator announces n = 1 to 4 clients whose inputs fill 0.4 of the headroom on every slot (d = 4096, so each
    coefficient of the encoding is the slots' value); each passes its client's check, and the key holder (recompute)
    decrypted the sum, 1.6 x the headroom, wrapped mod 2**20: -209715.2 released for 838860.8."""
    protocol = CKKSAggregation(min_clients=2)
    protocol.use_secret_context(sum_keys.secret)
    limit = ckks_headroom(protocol.params)
    n, d = 4, 4096
    x = np.full((n, d), 0.4 * limit)
    for i in range(n):
        protocol.check_encoding(1, x[i], i)  # what each client checks when the aggregator announces n = 1
    with pytest.raises(Refused, match="headroom"):
        protocol.check_encoding(n, x[0], 0)  # the true n would have been refused
    keys, request = _sum_request(sum_keys, x, [1] * n, 17)
    holder = KeyHolder(sum_keys.secret, KeyHolderPolicy(min_clients=2, recompute=True), session=S, client_keys=keys, length=d)
    with pytest.raises(Refused, match=r"client 0 does not verify over \(session, client, n = 4"):
        _handle(holder, request)
    assert holder.decrypted == []


def test_a_hidden_model_fed_inputs_checked_against_an_announced_n_below_the_true_count_is_refused(sum_keys):
    """Was a break (review 17): `KeyHolder._check_model_headroom` takes max |sum of the inputs| from the decrypted sum,
    which cannot wrap while every client checked against an n no smaller than the manifest; with the announced n = 1 it
    did (the model became -209715.2 for 838860.8). The n each client signed is now verified as the round's."""
    limit = ckks_headroom(CKKSAggregation().params)
    n, d = 4, 4096
    x = np.full((n, d), 0.4 * limit)
    keys, request = _sum_request(sum_keys, x, [1] * n, 18, Target.MODEL)
    holder = KeyHolder(sum_keys.secret, KeyHolderPolicy("hidden", min_clients=2), session=S, client_keys=keys, length=d,
                       model=sum_keys.secret.encrypt(np.zeros(d)))
    with pytest.raises(Refused, match="does not verify"):
        _handle(holder, request)
    assert holder.released is None


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(roster=st.integers(2, 6), data=st.data())
def test_no_announcements_and_roster_make_a_released_sum_wrap(sum_keys, roster, data):
    """Review 17's attack in general: the aggregator announces any n_i to each client i, which fills its headroom under
    that n_i (0.999 x the largest input its check passes, every slot; at n_i = 1 what one encoding holds), and gives the key holder any roster of `roster`
    positions; it lists any subset of at least 2 clients. Every release is the listed inputs' sum within the stated
    error (flood noise included): either each listed client signed an n >= the manifest's length, or it is refused."""
    announced = data.draw(st.lists(st.one_of(st.just(roster), st.integers(1, 6)), min_size=2, max_size=5), label="announced")
    protocol = CKKSAggregation(min_clients=2)
    limit, error = ckks_headroom(protocol.params), fresh_error_bound(protocol.params)
    m, d = len(announced), 4096
    most = [min((limit - (a + 2) * error) / a, ckks_encodable(protocol.params) - error) for a in announced]
    x = np.array([np.full(d, 0.999 * top) for top in most])
    for i, a in enumerate(announced):
        protocol.check_encoding(a, x[i], i)  # every client passes its own check
    listed = data.draw(st.lists(st.integers(0, m - 1), min_size=2, max_size=m, unique=True), label="listed")
    keys, request = _sum_request(sum_keys, x, announced, 20)
    positions = {u: keys.get(u, Signer.generate(SeededRandomness(21).fork(str(u))).public_bytes()) for u in range(max(roster, m))}
    keys = {u: positions[u] for u in range(roster)}  # the key holder's round: the roster the aggregator gave
    manifest = {u: request.manifest[u] for u in sorted(listed) if u < roster}
    if len(manifest) < 2:
        return
    request = DecryptRequest(Target.SUM, manifest, b"", {u: request.inputs[u] for u in manifest})
    holder = KeyHolder(sum_keys.secret, KeyHolderPolicy(min_clients=2), session=S, client_keys=keys, length=d)
    try:
        released = np.frombuffer(_handle(holder, request)[4:], "<f8")
    except Refused as refused:
        event(f"refused: {str(refused).split(':')[1][:30]}")
        return
    event("released")
    assert all(announced[u] >= len(manifest) for u in manifest)  # what the key holder's check implies
    truth = x[sorted(manifest)].sum(axis=0)
    assert np.max(np.abs(released - truth)) <= holder.last_bound + 8 * holder.release_noise_std(holder.last_bound), (
        f"released {released[0]:.6g} for {truth[0]:.6g}: the sum wrapped")


def test_control_an_honest_full_announcement_is_released(sum_keys):
    """The property above can fail: 4 clients announced n = 4 at the edge of their headroom are released as their sum."""
    protocol = CKKSAggregation(min_clients=2)
    limit, error = ckks_headroom(protocol.params), fresh_error_bound(protocol.params)
    x = np.full((4, 4096), 0.999 * (limit - 6 * error) / 4)
    keys, request = _sum_request(sum_keys, x, [4] * 4, 22)
    holder = KeyHolder(sum_keys.secret, KeyHolderPolicy(min_clients=2), session=S, client_keys=keys, length=4096)
    released = np.frombuffer(_handle(holder, request)[4:], "<f8")
    assert np.max(np.abs(released - x.sum(axis=0))) <= holder.last_bound + 8 * holder.release_noise_std(holder.last_bound)


def test_a_bfv_sum_of_more_inputs_than_the_plain_modulus_holds_is_refused_by_the_key_holder():
    """Was a break (review 17): only the aggregator checked that n (2**bits - 1) < t/2; 128 honest 32-bit inputs wrapped mod t at the key holder, which now refuses. BFV (bfv-8192, t = 1099511480321 ~ 2**40) at bits = 32: only the aggregator checks n (2**32 - 1) < t / 2 (`check_inputs`, the
    build's participants). A key holder sent 128 signed honest inputs (each 2**32 - 1, a valid ring element) releases 147327 for
    the ring sum 4294967168: the integer sum wrapped mod t before the reduction mod 2**32. It knows the count (the manifest) and
    its bits: it can refuse len(manifest) (2**bits - 1) >= t / 2 before decrypting."""
    protocol = BFVAggregation(min_clients=2, bits=32)
    n, d = 128, 8
    x = np.full((n, d), 2**32 - 1, dtype=np.int64)
    signers = [Signer.generate(SeededRandomness(19).fork(str(i))) for i in range(n)]
    cts = [protocol.keys.public.encrypt(row).to_bytes() for row in x]
    manifest = {i: (digest(cts[i]), signers[i].sign(signed_message(S, i, n, digest(cts[i])))) for i in range(n)}
    holder = KeyHolder(protocol.keys.secret, KeyHolderPolicy(min_clients=2, bits=32), session=S,
                       client_keys={i: s.public_bytes() for i, s in enumerate(signers)}, length=d)
    request = DecryptRequest(Target.SUM, manifest, b"", {i: cts[i] for i in range(n)})
    try:
        released = np.frombuffer(holder.handle(encode_frame(Frame(Kind.DECRYPT_REQUEST, S, SERVER, KEY_HOLDER, request.encode())))[4:], "<f8")
    except Refused:
        return
    ring_sum = (n * (2**32 - 1)) % 2**32
    assert np.all(released == ring_sum), f"released {released[0]:.0f} for the ring sum {ring_sum}: the sum wrapped mod t"


def test_a_client_refuses_public_parameters_without_a_client_count():
    """Review 17: a missing n was read as 1 (the weakest headroom check); the client refuses it now."""
    protocol = CKKSAggregation(min_clients=2)
    with pytest.raises(Refused, match="announce no client count"):
        protocol.client_role(0, np.zeros(8), {"session": "00" * 8, "d": 8}, SeededRandomness(1), {})
