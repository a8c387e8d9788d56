"""The dealer's seed for S0's Gram-triple share reaches S0 only (a tap on every link of a round)."""

import numpy as np

from protocols import secure_sum
from protocols.core.messages import Kind
from protocols.core.wire import DEALER, HEADER_BYTES, SECOND_SERVER, SERVER
from protocols.two_server import TwoServerRobust

TAG = 32  # the link tag the transport appends


def test_second_server_never_receives_the_dealers_seed():
    """A tap on every link: the dealer's frame to S0 is its 32-byte seed, and those bytes appear in nothing S1
    receives; S1's triple share comes from the dealer only, as explicit matrices."""
    x = np.random.default_rng(3).integers(0, 2**12, (5, 300)).astype(np.uint16)
    frames = []

    def wire(src, dst, sealed):
        frames.append((src, dst, sealed[:-TAG]))
        return [sealed]

    secure_sum(x, protocol=TwoServerRobust(rule="multi_krum", f=1, bits=16, validate=False), seed=5, wire=wire)
    to_s0 = [body for src, dst, body in frames if src == DEALER and dst == SERVER]
    assert len(to_s0) == 1 and len(to_s0[0]) == HEADER_BYTES + 32 and to_s0[0][3] == Kind.MATRIX
    seed = to_s0[0][HEADER_BYTES:]
    received_by_s1 = [body for _, dst, body in frames if dst == SECOND_SERVER]
    assert received_by_s1 and not any(seed in body for body in received_by_s1)
    assert not any(seed in body for src, dst, body in frames if src == SERVER)  # S0 never forwards it


def test_second_server_never_receives_the_dealers_seeds_on_the_split_path(monkeypatch):
    """Split (S1 and the dealer behind S0's link, as on Flower): every seed the dealer hands S0 (the Gram triple's
    and the validation batches') appears in nothing S0 relays to S1, and the round still gives the in-process sum."""
    from protocols.two_server import remote
    from tests.protocols.test_two_server_split import split_round

    x = np.random.default_rng(4).integers(0, 40, (5, 40)).astype(np.uint16)  # ||x|| < 400: every client passes
    dealt, relayed = [], []
    deal = remote.sealed_deal

    def tapped(kind, args, index, public, rng, **identities):
        seed, sealed = deal(kind, args, index, public, rng, **identities)
        dealt.append((kind, seed))
        return seed, sealed

    monkeypatch.setattr(remote, "sealed_deal", tapped)
    config = {"rule": "multi_krum", "f": 1, "bits": 10, "norm_bound": 400.0}
    there, _ = split_round(TwoServerRobust(**config), x, 6, relay=lambda frames: relayed.extend(frames) or frames)
    assert not there.rejected and "gram" in [kind for kind, _ in dealt] and relayed
    assert not any(seed in frame for _, seed in dealt for frame in relayed)
    assert np.array_equal(there.result, secure_sum(x, protocol=TwoServerRobust(**config), seed=6).result)
