"""Review 9 (D): after 581236e (the masking server checks an advertisement's end before recording it), the other
parsers that take a client's frame: does a refused frame still change the round? Held: SecAgg+'s masked input is
added to the sum only after its vector parsed to its end, and S0 offers S1 only the clients it holds both a parsed
seed and a sealed share of; the collector now records nothing of a bundle whose seed frame is refused (it recorded
the sealed share, never relayed)."""

import numpy as np
import pytest

from protocols import SecAggPlus, secure_sum
from protocols.core.errors import MalformedMessage
from protocols.core.messages import Kind
from protocols.core.wire import SERVER, Frame, Reader, Writer, decode_frame, encode_frame
from protocols.testing import check_sum
from protocols.two_server.client import MAX_SEALED, SIGNATURE_BYTES, ShareCollector
from protocols.two_server.round import TwoServerRobust
from tests.protocols.test_review8_fixes import _with_payload


def _frame(frame: bytes) -> Frame:
    return decode_frame(frame, party="attack", stage="attack")


def test_a_masked_input_with_one_trailing_byte_excludes_only_its_sender_and_the_sum_is_exact():
    """Byzantine client 2 appends one byte to its masked vector: were it added before the end check, the sum would
    carry its self mask (and its pair masks twice) and come out uniformly wrong."""
    def trailing(src, dst, frame):
        if src == 2 and dst == SERVER and _frame(frame).kind == Kind.VECTOR:
            return [_with_payload(frame, _frame(frame).payload + b"\x00")]
        return [frame]

    x = np.arange(8 * 3, dtype=np.uint32).reshape(8, 3)
    for active in (False, True):
        out = secure_sum(x, protocol=SecAggPlus(n=8, k=4, t=3, active=active), seed=1, tamper=trailing)
        assert out.included == (0, 1, 3, 4, 5, 6, 7)
        check_sum(x, out, 32)


def test_a_bundle_whose_seed_frame_is_refused_never_reaches_s1_and_the_round_goes_on():
    """Client 2's seed frame (inside its signed bundle) gets one trailing byte: S0 refuses the seed after recording the
    sealed share; the client is out and Multi-Krum runs on the other five."""
    def bad_seed(src, dst, frame):
        if src == 2 and dst == SERVER and _frame(frame).kind == Kind.SEALED_SHARE:
            r = Reader(_frame(frame).payload, party="a", stage="a")
            seed, sealed, signature = r.blob(MAX_SEALED), r.blob(MAX_SEALED), r.blob(SIGNATURE_BYTES)
            return [_with_payload(frame, Writer().blob(_with_payload(seed, _frame(seed).payload + b"\x00")).blob(sealed).blob(signature).getvalue())]
        return [frame]

    x = np.random.default_rng(3).integers(-1000, 1000, (6, 3))
    ring = (x % (1 << 24)).astype(np.uint32)
    out = secure_sum(ring, protocol=TwoServerRobust(rule="multi_krum", f=1, bits=24, m=3), seed=2, tamper=bad_seed)
    assert 2 not in out.included and len(out.included) == 3
    assert any(getattr(e, "party", "") == "client 2" for e in out.rejected)
    wrapped = (out.result.astype(np.int64) + (1 << 23)) % (1 << 24) - (1 << 23)
    assert np.array_equal(wrapped, x[list(out.included)].sum(axis=0))


def test_the_collector_records_nothing_of_a_bundle_whose_seed_frame_is_refused():
    """The same bundle at S0's collector alone: MalformedMessage, and neither its sealed share nor its seed is recorded
    (before, the sealed share was, and only the relay's intersection with the seeds kept it from S1)."""
    session = bytes(8)
    seed = Frame(Kind.SHARE_SEED, session, 2, SERVER, bytes(32) + b"\x00")  # one trailing byte
    bundle = Frame(Kind.SEALED_SHARE, session, 2, SERVER,
                   Writer().blob(encode_frame(seed)).blob(b"sealed share").blob(bytes(SIGNATURE_BYTES)).getvalue())
    collector = ShareCollector(6, session)
    with pytest.raises(MalformedMessage):
        collector.receive(encode_frame(bundle), 2)
    assert 2 not in collector.sealed and 2 not in collector.seeds
