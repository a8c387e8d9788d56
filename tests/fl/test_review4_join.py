"""Review 4: `fl.flower_engine._join`, attacked by a ServerApp that writes the round number and the public
parameters of every update message ("a server cannot have one update summed twice under two participations by
re-running a round"; for HE it refuses "a session whose round number (its first 4 bytes) is not r").

Break: `_join` reads the OUTERMOST "session" key of the nested public parameters, the HE protocol the innermost
one. A ServerApp that adds a fresh "session" of round r to the clip layer's parameters (which ignore it) has a
client join round r while it encrypts and signs under an earlier round's session, which it already joined.
(The key holder's ledger, one session a round, forward only, still refuses a second release of that session.)
Smallest fix: read the session where the HE protocol does (`two_server_public`-style: descend to the HE layer's
own parameters), or have every layer refuse keys it does not know.

Holds: a round at or below the last one joined, a negative, a string-typed or a > u32 round, a session of another round."""

import json

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")

from flwr.app import Context, RecordDict

from fl.flower_engine import _client_setup, _join, config_from_run
from protocols.core.errors import Refused
from protocols.core.pki import ClientIdentity
from secagg.randomness import SeededRandomness

RUN = {"stack": "ckks", "clients": 4, "data": "breast_cancer", "model": "logreg"}


@pytest.fixture(scope="module")
def stack():
    return _client_setup(config_from_run(RUN))[2]


def _node():
    return Context(run_id=7, node_id=1, node_config={"partition-id": 0, "num-partitions": 4}, state=RecordDict(), run_config={})


def _public(stack, r=1):
    """Public parameters of a round opened by the stack (the HE session inside the clip layer's), its session's round
    number set to `r` (the cached stack's own count runs on across tests)."""
    public = json.loads(json.dumps(stack.open_round(4, 62, SeededRandomness(abs(r))).public))
    public["inner"]["session"] = f"{r % 2**32:08x}" + public["inner"]["session"][8:]
    return public


def _session(public):
    while "session" not in public:
        public = public["inner"]
    return public["session"]


def test_a_client_joins_round_r_only_under_a_session_of_round_r(stack):
    node, public = _node(), _public(stack)
    _join(node, 1, public, stack)
    assert _session(public).startswith("00000001")
    crafted = dict(public, session="00000002aaaaaaaa")  # the clip layer's parameters carry a round-2 session too
    try:
        _join(node, 2, crafted, stack)
    except Refused:
        return
    role = stack.client_role(0, np.zeros(62), crafted, SeededRandomness(2), {}, identity=ClientIdentity.simulated(0))
    assert role._session.hex()[:8] == f"{2:08x}", f"joined round 2, signs under session {role._session.hex()} (round 1, already joined)"


@pytest.mark.parametrize("r", [1, 0, -1, 2**32 + 1, -(2**32) + 1])
def test_a_round_at_or_below_the_last_or_outside_u32_is_refused(stack, r):
    node, public = _node(), _public(stack)
    _join(node, 1, public, stack)
    second = _public(stack, r)  # a session whose first 4 bytes are r mod 2^32
    with pytest.raises(Refused):
        _join(node, r, second, stack)


@pytest.mark.parametrize("session", ["00000003aaaaaaaa", "00000002AAAAAAAA", "00000002aaaa", "", "0000000zaaaaaaaa", "+0000002aaaaaaaa"])
def test_a_session_that_is_not_of_the_round_is_refused(stack, session):
    public = _public(stack)
    public["inner"]["session"] = session
    with pytest.raises(Refused):
        _join(_node(), 2, public, stack)


def test_the_round_is_an_int_whatever_the_record_holds(stack):
    """The engine passes int(cfg["round"]): a string "2" is round 2, and round 2 after it is refused."""
    node, public = _node(), _public(stack)
    public = _public(stack, 2)
    _join(node, int("2"), public, stack)
    with pytest.raises(Refused):
        _join(node, int(" 2 "), public, stack)
    with pytest.raises(ValueError):
        int("2.5")  # a non-integer round fails before _join (the message errors, the node computes nothing)
