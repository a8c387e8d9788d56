"""Review 6, break 5 on Flower (FakeGrid, no SuperLink): a Byzantine client node corrupts the encrypted shares in its
share-keys reply (a bit flipped, a cut, another pair's ciphertext), or reports shares it can read as unreadable in
its unmasking reply. The honest recipients (senders) stay included, and the round equals the in-process round under
the same attack, with the same seed: included set, result and the unreadable pairs in the report."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

flwr = pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Message, RecordDict

from fl.experiment import build_stack, local_datasets
from fl.flower_engine import FlowerRounds
from fl.models import get_flat
from protocols.core.errors import BelowThreshold, ProtocolError
from protocols.core.report import Output
from protocols.core.schedule import DropoutSchedule
from protocols.core.secure_sum import secure_sum
from protocols.testing import claim_unreadable, corrupt_shares
from tests.fl.test_flower_node_failures import SEED, _config
from tests.fl.test_review6_node_failures import SETTINGS, Tampering, _rows
from tests.protocols.test_masking_share_blame import Byzantine

pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py
CLIENTS = 5


def _rewritten(rewrite):
    """A Tampering hook that replaces node 101's frame by `rewrite(frame)`."""
    def tamper(msg, reply):
        answer = dict(reply.content.config_records["f"])
        return [Message(RecordDict({"f": ConfigRecord({**answer, "frame": rewrite(bytes(answer["frame"]))})}), reply_to=msg)]
    return tamper


def _both(active, nth, rewrite, byz):
    """(Flower outcome, in-process outcome): node 101's nth frame reply rewritten; in process, byz's tamper."""
    config = dataclasses.replace(_config("secagg+"), active=active)
    grid = Tampering(config, 101, "query.frame", _rewritten(rewrite), nth)
    params = get_flat(local_datasets(config)[1])
    try:
        flower = FlowerRounds(grid, config).aggregate(1, np.arange(CLIENTS), params, build_stack(config, len(params), params), DropoutSchedule(), SEED)
    except ProtocolError as exc:
        flower = exc
    rows = _rows(grid, params)
    try:
        here = secure_sum(rows, protocol=build_stack(config, len(params), params), seed=SEED, tamper=byz.tamper)
    except ProtocolError as exc:
        here = exc
    return flower, here


def _same(flower, here):
    if not isinstance(here, Output):
        assert type(flower) is type(here), f"in process: {here!r}; on Flower: {flower!r}"
        return
    assert isinstance(flower, Output), repr(flower)
    assert flower.included == here.included and np.array_equal(flower.result, here.result)
    notes = [next(r.guarantee.notes for r in out.reports if r.layer == "secagg+") for out in (flower, here)]
    assert ("unreadable" in notes[0]) == ("unreadable" in notes[1]) and notes[0].split("unreadable")[-1] == notes[1].split("unreadable")[-1]


VICTIMS = st.sets(st.sampled_from([0, 2, 3, 4]), min_size=1, max_size=2)


@given(victims=VICTIMS, mode=st.sampled_from(["flip", "truncate", "other-pair"]), position=st.integers(0, 2**20), active=st.booleans())
@settings(max_examples=8, **SETTINGS)
def test_a_node_corrupting_its_shares_gets_no_honest_recipient_excluded_and_equals_the_in_process_round(victims, mode, position, active):
    """n = 5, k = 4, t = 3 (SecAgg+ falls back to the complete graph): client 1 corrupts its shares for one or two
    recipients. The recipients stay included (a cut frame: client 1 is a dropout before sharing), as in process;
    two unreadable shares leave client 1's seed 2 < t readable ones: the round aborts naming client 1 (before the
    fix it excluded both recipients, and with 3 < t + 1 survivors aborted as well)."""
    flower, here = _both(active, 1, lambda frame: corrupt_shares(frame, victims, mode, position)[0], Byzantine(CLIENTS, {1: (victims, mode, position)}, {}))
    _same(flower, here)
    if len(victims) > 4 - 3 and mode != "truncate":
        assert isinstance(flower, BelowThreshold) and "client 1's SELF_MASK_SEED" in str(flower), repr(flower)
        return
    assert isinstance(flower, Output) and {0, 2, 3, 4} <= set(flower.included), repr(flower)
    assert not {e.party for e in flower.rejected} & {"client 0", "client 2", "client 3", "client 4"}, flower.rejected


@given(accused=VICTIMS, junk=st.booleans(), active=st.booleans())
@settings(max_examples=6, **SETTINGS)
def test_a_node_falsely_reporting_shares_unreadable_gets_no_honest_sender_excluded_and_equals_the_in_process_round(accused, junk, active):
    """Client 1 reports the shares it holds of one or two honest clients unreadable at unmasking (withholding them), or
    with junk bytes (its reply is rejected). The accused stay included; the round equals the in-process one."""
    nth = 4 if active else 3  # its unmasking frame: after advertise, share keys, masked input (and the consistency check)
    flower, here = _both(active, nth, lambda frame: claim_unreadable(frame, accused, CLIENTS, junk)[0], Byzantine(CLIENTS, {}, {1: (accused, junk)}))
    _same(flower, here)
    assert isinstance(flower, Output) and {0, 2, 3, 4} <= set(flower.included), repr(flower)
