"""The second server's and the dealer's node logic (fl.remote_two_server) without Flower: a node's state is a
dict, each message one call. A round through it gives the in-process round; a round key lasts one round."""

import json

import numpy as np
import pytest

from fl.remote_two_server import dealer_reply, new_round_key, second_server_reply
from protocols.core.errors import Aborted
from protocols.core.messages import Kind
from protocols.core.secure_sum import secure_sum
from protocols.core.wire import DEALER
from protocols.two_server import TwoServerRobust
from protocols.two_server.identities import check_batch, round_key_message, simulated_signer
from protocols.two_server.remote import RemoteServers, two_server_public
from protocols.two_server.sealing import associated_data, unseal
from secagg.agreement import X25519Agreement
from secagg.randomness import SystemRandomness
from secagg.signatures import Signer
from tests.protocols.split_round import drive_clients


def _round(x, seed, s1_state, relayed, dealer_key=None):
    """One round with S1 and the dealer as nodes (their state a dict); `relayed` collects what S0 relayed."""
    protocol = TwoServerRobust(rule="multi_krum", f=1, bits=16)
    protocol.use_second_server(bytes.fromhex(new_round_key(s1_state)), bytes.fromhex(s1_state["signature"]))
    driven = drive_clients(protocol, x, seed)  # tests/protocols/split_round.py
    public = json.dumps(driven.opened.public)

    def ask(frames):
        relayed.extend(frames)
        reply = second_server_reply(protocol, s1_state, public, frames, dealer_key)
        return reply["frames"], reply["error"] or None

    def deal(kind, args, index):
        reply = dealer_reply({"kind": kind, "args": json.dumps(list(args)), "index": index, "public": public})
        return reply["seed"], reply["sealed"]

    return driven.finish(RemoteServers(ask, deal)), public


def test_a_round_through_the_node_logic_gives_the_in_process_round():
    x = np.random.default_rng(0).integers(0, 50, (5, 6)).astype(np.uint16)
    out, _ = _round(x, 4, {}, [])
    here = secure_sum(x, protocol=TwoServerRobust(rule="multi_krum", f=1, bits=16), seed=4)
    assert np.array_equal(out.result, here.result) and out.included == here.included


def test_frames_of_an_earlier_round_fail_under_the_next_round_key():
    """S0 replays round A's relayed frames to S1 after S1 drew round B's key: S1 stops (the sealed shares fail)."""
    x = np.random.default_rng(1).integers(0, 50, (5, 6)).astype(np.uint16)
    state, relayed = {}, []
    _, public = _round(x, 2, state, relayed)
    protocol = TwoServerRobust(rule="multi_krum", f=1, bits=16)
    new_round_key(state)
    reply = second_server_reply(protocol, state, public, relayed)
    assert reply["error"].startswith("Aborted") and "another second-server key" in reply["error"]
    forged = json.loads(public)
    two_server_public(forged)["second_server"] = new_round_key(state)  # round A's session and frames under a new round's key
    reply = second_server_reply(protocol, state, json.dumps(forged), relayed)
    assert reply["error"].startswith("BelowThreshold") and "0 inputs reached both servers" in reply["error"]  # no sealed share opened


def test_s1_opens_no_batch_of_a_dealer_other_than_the_one_it_pins():
    """S1 pins a deployment dealer's key: batches the (simulated) dealer signed abort the round before S1 opens them."""
    x = np.random.default_rng(2).integers(0, 50, (5, 6)).astype(np.uint16)
    with pytest.raises(Aborted, match="dealer batch signature failed authentication"):
        _round(x, 3, {}, [], dealer_key=Signer.generate(SystemRandomness()).public_bytes())


def test_s1_refuses_frames_before_its_round_key():
    reply = second_server_reply(TwoServerRobust(), {}, "{}", [])
    assert reply["error"].startswith("Refused") and reply["frames"] == []


def test_the_dealer_seals_s1s_part_and_refuses_bad_requests():
    key = X25519Agreement.from_private_bytes(bytes(range(32)))
    signature = simulated_signer("second-server").sign(round_key_message(0, key.public_bytes())).hex()
    inner = {"session": "00" * 8, "second_server": key.public_bytes().hex()}
    unsigned = json.dumps({"layer": "clip", "inner": inner})
    assert "not signed by the second server" in dealer_reply({"kind": "gram", "args": "[3, 4]", "index": 2, "public": unsigned})["error"]
    public = json.dumps({"layer": "clip", "inner": {**inner, "second_server_signature": signature}})
    assert "not signed" in dealer_reply({"kind": "gram", "args": "[3, 4]", "index": 2, "public": public}, run=1)["error"]  # another run's
    reply = dealer_reply({"kind": "gram", "args": "[3, 4]", "index": 2, "public": public})
    assert len(reply["seed"]) == 32
    ad = associated_data(bytes(8), DEALER, Kind.MATRIX, 2)
    sealed = check_batch(simulated_signer("dealer").public_bytes(), ad, key.public_bytes(), reply["sealed"])
    plain = unseal(key, sealed, associated_data(bytes(8), DEALER, Kind.MATRIX, 2), party="t", stage="t")
    assert len(plain) == 8 + 8 * 12 + 8 + 8 * 9  # A_1 (3, 4) and C_1 (3, 3), each with its shape header
    for bad in ({"kind": "gram", "args": "[3]"}, {"kind": "square", "args": "[3, 4]"}, {"kind": "and", "args": "[2, 1e9]"},
                {"kind": "gram", "args": "[3, 4]", "index": -1}, {"kind": "and", "args": f"[{2**20}, {2**20}]"}):
        assert "error" in dealer_reply({"index": 0, "public": public, **bad}), bad
