"""Review 4: the two-server round on Flower attacked by an active first server S0, which relays every frame
between the clients, S1 and the dealer (the README's "S0 sees them sealed only, and one it alters, replays
or swaps excludes its client or aborts the round"; "The dealer is a node of its own, never S0 or S1").

Break: S1 cannot tell a dealer batch from one S0 made. A sealed batch is bound to the session, the sender
DEALER, the kind and the index, but not authenticated by the dealer: S0 knows S1's key (it relays it) and
the associated-data layout, deals every batch itself and seals S1's half to S1. S1 runs the round on triples
S0 knows entirely (a dealer inside S0), and its openings E_1 = X_1 - A_1 then give S0 S1's input shares.
Smallest fix: the dealer signs each sealed batch (Ed25519 over ad | sealed) with a long-term key S1 pins in its
own node config, and S1 refuses an unsigned one; the dealer takes S1's key from its own config, not S0's request.

Holds: a genuine batch relayed under another index, session or in place of another batch aborts the round."""

import numpy as np
import pytest

from protocols.core.errors import Aborted, MalformedMessage
from protocols.core.messages import Kind
from protocols.core.secure_sum import secure_sum
from protocols.core.wire import DEALER
from protocols.two_server import TwoServerRobust, dealer
from protocols.two_server.channel import encode_matrix
from protocols.two_server.remote import sealed_deal, two_server_public
from protocols.two_server.sealing import associated_data, seal, unseal
from secagg.agreement import X25519Agreement
from secagg.randomness import SeededRandomness, SystemRandomness
from tests.protocols.split_round import split_round

BITS = 10


def _round(x, seed, deal=None):
    """One split round (tests/protocols/split_round.py); `deal(link_deal, session, s1_key) -> deal function` replaces
    what S0 does with dealer batches."""
    key = X25519Agreement.generate(SystemRandomness())

    def hook(link, public):
        link.deal = deal(link.deal, bytes.fromhex(two_server_public(public)["session"]), key.public_bytes())
        return link

    return split_round(TwoServerRobust(bits=BITS, rule="multi_krum", f=1), x, seed, key=key, link_hook=None if deal is None else hook)


def _inputs(n=5, d=4, seed=3):
    return np.random.default_rng(seed).integers(0, 30, (n, d)).astype(np.uint16)


def test_s1_refuses_a_dealer_batch_that_s0_made():
    x = _inputs()
    known = []  # S1's halves of every triple: what the dealer alone may know

    def forge(_genuine, session, s1_key):
        own = SeededRandomness(b"S0's own dealer")

        def deal(kind, args, index):
            seed, parts = dealer.deal(kind, tuple(args), own)
            known.append(parts)
            return seed, seal(s1_key, b"".join(encode_matrix(p) for p in parts), associated_data(session, DEALER, Kind.MATRIX, index), own)
        return deal

    honest = secure_sum(x, protocol=TwoServerRobust(bits=BITS, rule="multi_krum", f=1), seed=5)
    try:
        out = _round(x, 5, deal=forge)
    except Aborted:
        return  # S1 refused the batch: the guarantee holds
    assert known, "the round used no dealer batch"
    assert np.array_equal(out.result, honest.result)  # the round completed, correct, on S0's triples
    pytest.fail(f"S1 ran the round on {len(known)} batches S0 dealt itself (S0 knows both halves of every triple)")


@pytest.mark.parametrize("attack", ["index", "session", "swap"])
def test_a_genuine_batch_relayed_elsewhere_aborts_the_round(attack):
    x = _inputs()

    def relay(genuine, session, s1_key):
        seen = []

        def deal(kind, args, index):
            if attack == "index":
                return genuine(kind, args, index + 1)
            if attack == "session":  # a batch of another round's session (the dealer seals to what S0 sends)
                return _other_session(kind, args, index, s1_key, session)
            seen.append(genuine(kind, args, index))
            return seen[0]  # every later batch replaced by the first one (a replay under another index)
        return deal

    with pytest.raises(Aborted):
        _round(x, 5, deal=relay)


def _other_session(kind, args, index, s1_key, session):
    """The dealer's genuine batch for the same request in another session (S0 asked with other public parameters)."""
    other = bytes([session[0] ^ 1]) + session[1:]
    return sealed_deal(kind, args, index, {"session": other.hex(), "second_server": s1_key.hex()}, SystemRandomness())


def test_the_dealer_seals_s1s_half_only_to_s1():
    """The dealer (`sealed_deal`, what the dealer node's `fl.remote_two_server.dealer_reply` runs on S0's request)
    takes S1's key from the public parameters S0 sends."""
    s0 = X25519Agreement.generate(SystemRandomness())  # S0's own key, named as the second server's
    session = bytes(range(8))
    try:
        _seed, sealed = sealed_deal("gram", (3, 2), 0, {"session": session.hex(), "second_server": s0.public_bytes().hex()}, SystemRandomness())
        opened = unseal(s0, sealed, associated_data(session, DEALER, Kind.MATRIX, 0), party="S0", stage="test")
    except (ValueError, MalformedMessage):
        return  # the dealer refused a key that is not S1's: the guarantee holds
    pytest.fail(f"S0 opened S1's half of the batch ({len(opened)} bytes) beside its own seed: it knows the whole triple")
