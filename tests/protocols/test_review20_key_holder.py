"""Review 20, item 1 (held): the hidden-state key holder moves its model, `refreshed` and `released` only with a MODEL
release its ledger recorded, at most one a round, whatever a deviating aggregator sends (sessions forged or replayed,
manifests short or swapped, inputs missing, box keys forged, of low order or of the wrong length, other targets). The
key holder is rebuilt for every request from the model kept so far, as the Flower key-holder node does (it saves
`holder.model` iff `holder.released is not None`)."""

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocols.core.errors import ProtocolError
from protocols.core.messages import Kind
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, encode_frame
from protocols.he.aggregation import ciphertext_limit
from protocols.he.key_holder import KeyHolder
from protocols.he.messages import DecryptRequest, Target, digest, signed_message
from protocols.he.policy import KeyHolderPolicy, ReleaseLedger, session_of
from protocols.he.release import box_key_message, encode_box_keys, parse_model_release
from protocols.testing import check_releases
from secagg.agreement import X25519Agreement
from secagg.randomness import SeededRandomness
from secagg.signatures import Signer

N, D = 4, 8
SESSIONS = [session_of(1, b"r20a"), session_of(2, b"r20b"), session_of(1, b"r20c")]  # the last: round 1 under a second session
BOX_KINDS = ["valid", "valid", "none", "low order", "31 bytes", "forged signature", "other client's key", "garbage"]

step = st.tuples(st.integers(0, len(SESSIONS) - 1), st.sampled_from([Target.MODEL, Target.MODEL, Target.SUM]),
                 st.lists(st.integers(0, N - 1), max_size=N, unique=True).map(lambda c: tuple(sorted(c))),
                 st.sampled_from(["relay", "relay", "swap", "none"]), st.sampled_from(BOX_KINDS), st.booleans())


def _box_keys(kind: str, session: bytes, clients: tuple[int, ...], signers: list[Signer]) -> bytes:
    if kind == "none":
        return b""
    if kind == "garbage":
        return b"\x07" * 9
    keys = {}
    for u in clients:
        public = X25519Agreement.generate(SeededRandomness(20).fork(f"{u}")).public_bytes()
        signer = signers[u]
        if kind == "low order" and u == clients[0]:
            public = bytes(32)
        if kind == "31 bytes" and u == clients[0]:
            public = public[:31]
        if kind == "forged signature" and u == clients[0]:
            signer = signers[(u + 1) % N]
        signature = signer.sign(box_key_message(session, u, public))
        if kind == "other client's key" and u == clients[0]:
            signature = signers[(u + 1) % N].sign(box_key_message(session, (u + 1) % N, public))
        keys[u] = (public, signature)
    return encode_box_keys(keys)


EVERYONE = tuple(range(N))
HONEST = [(0, Target.MODEL, EVERYONE, "relay", "valid", False), (0, Target.MODEL, EVERYONE, "relay", "valid", False),  # a replay
          (2, Target.MODEL, EVERYONE, "relay", "valid", False), (1, Target.MODEL, EVERYONE, "relay", "low order", False),
          (1, Target.MODEL, EVERYONE, "relay", "valid", False)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=6), recompute=st.booleans(), min_clients=st.integers(1, 3))
@example(steps=HONEST, recompute=True, min_clients=2)
@example(steps=HONEST, recompute=False, min_clients=2)
def test_held_no_request_sequence_moves_the_hidden_model_without_a_recorded_release(sum_keys, steps, recompute, min_clients):
    policy = KeyHolderPolicy("hidden", min_clients=min_clients, recompute=recompute)
    x = np.random.default_rng(20).normal(0, 1.0, (N, D))
    signers = [Signer.generate(SeededRandomness(21).fork(str(i))) for i in range(N)]
    keys = {i: s.public_bytes() for i, s in enumerate(signers)}
    cts = [sum_keys.public.encrypt(row).to_bytes() for row in x]
    held, ledger, releases = sum_keys.secret.encrypt(np.full(D, 1.0)), ReleaseLedger(), []
    for index, target, clients, relay, box, forge_n in steps:
        session = SESSIONS[index]
        n = N + 1 if forge_n else N  # a signature over another n than the key holder's round size
        manifest = {u: (digest(cts[u]), signers[u].sign(signed_message(session, u, n, digest(cts[u])))) for u in clients}
        inputs = {u: cts[u] for u in clients}
        if relay == "swap" and len(clients) >= 2:
            a, b = clients[:2]
            inputs[a], inputs[b] = inputs[b], inputs[a]
        payload = held.to_bytes() if not recompute else b""  # without recompute the key holder decrypts what it is sent
        request = DecryptRequest(target, manifest, payload, None if relay == "none" else inputs, _box_keys(box, session, clients, signers))
        frame = encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, request.encode()))
        before, record = sum_keys.secret.decrypt(held), ledger.to_json()
        holder = KeyHolder(sum_keys.secret, policy, session=session, client_keys=keys, length=D, ledger=ledger, model=held)
        try:
            reply = holder.handle(frame)
        except ProtocolError:
            assert holder.model is held and holder.released is None and holder.refreshed == b"", "a refused request moved the model"
            assert ledger.to_json() == record, "a refused request changed the ledger"
            continue
        assert target == Target.MODEL and holder.released is not None
        refreshed, sealed = parse_model_release(reply, N, D, ciphertext_limit(sum_keys.public.params, D), party="t", stage="t")
        assert refreshed == holder.refreshed == holder.model.to_bytes(), "the aggregator's copy is not the key holder's model"
        assert ledger.rounds[f"local/{int.from_bytes(session[:4], 'big')}"]["released"] == [int(Target.MODEL)]
        # with the inputs, the key holder sums them onto its own model (recompute or not); without, it decrypts the payload, Enc(w)
        expected = before + x[list(clients)].sum(axis=0) if relay != "none" else before
        assert np.allclose(sum_keys.secret.decrypt(holder.model), expected, atol=1e-3)
        assert np.allclose(holder.released, expected, atol=1e-2)
        releases.append((session, target, clients))
        held = holder.model  # what the Flower node saves
    check_releases(policy, releases)
    if steps == HONEST:  # the honest requests are released: round 1 once (its replay and second session refused), then round 2
        assert [(s, c) for s, _, c in releases] == [(SESSIONS[0], EVERYONE), (SESSIONS[1], EVERYONE)]
