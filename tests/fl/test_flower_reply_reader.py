"""`fl.flower_engine._read`, the one reader of a node's reply record (clients' replies and, through
`FlowerRounds._reply`, the key holder's, S1's and the dealer's), attacked by a node that sends any record: an error
reply, no record, a field missing or of another type, an `error` field. A client's reply fails with `Refused` (error
reply) or `MalformedMessage`; a non-client party's with `Aborted`, its `error` field being its refusal (`Refused`)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

flwr = pytest.importorskip("flwr")

from flwr.app import ConfigRecord, Error, Message, RecordDict

from fl.flower_engine import _bytes, _flag, _float, _read, _seconds, _text
from protocols.core.errors import Aborted, MalformedMessage, Refused

pytestmark = pytest.mark.usefixtures("task_identity")  # tests/fl/conftest.py: a Message needs a run
NODE = 104
FIELDS = {"cpu": (_float, float), "aborted": (_flag, bool), "frame": (_bytes, bytes), "error": (_text, str)}
VALUES = st.one_of(st.floats(allow_nan=False), st.booleans(), st.integers(-5, 5), st.binary(max_size=4), st.text(max_size=4))
CLIENT = {"failed": Refused, "malformed": MalformedMessage, "refuses": False}
PARTY = {"failed": Aborted, "malformed": Aborted, "refuses": True}


def _reply(records: dict | None = None, reason: str | None = None) -> Message:
    asked = Message(RecordDict(), dst_node_id=NODE, message_type="query.frame")
    if reason is not None:
        return Message(error=Error(code=0, reason=reason), reply_to=asked)
    return Message(RecordDict(records), reply_to=asked)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(FIELDS)), VALUES), st.sets(st.sampled_from(sorted(FIELDS))))
def test_a_client_reply_is_read_iff_each_required_and_present_optional_field_has_its_type(values, required):
    """Required fields: `required`; the others optional. Accepted exactly when each required field is there and each
    field there (required or optional) is an instance of its type (bool is no float, int no float); else
    `MalformedMessage` naming client 3, the stage, the node and the first bad field."""
    fields = {n: FIELDS[n][0] for n in sorted(required)}
    optional = {n: FIELDS[n][0] for n in sorted(set(FIELDS) - required)}
    order = [*fields, *(n for n in optional if n in values)]
    bad = [n for n in order if not isinstance(values.get(n), FIELDS[n][1])]
    reply = _reply({"f": ConfigRecord(values)})
    if not bad:
        assert _read(reply, "f", fields, "client 3", "collect", optional=optional) == {n: values[n] for n in order}
        return
    with pytest.raises(MalformedMessage) as caught:
        _read(reply, "f", fields, "client 3", "collect", optional=optional)
    assert caught.value.party == "client 3" and caught.value.stage == "collect"
    assert f"its node {NODE} sent f.{bad[0]} = " in str(caught.value)


@pytest.mark.parametrize(("policy", "failed", "malformed"), [(CLIENT, Refused, MalformedMessage), (PARTY, Aborted, Aborted)])
def test_an_error_reply_or_a_missing_record_is_the_policys_error_naming_the_node(policy, failed, malformed):
    with pytest.raises(failed, match=f"its node {NODE} failed: OSError: disk") as caught:
        _read(_reply(reason="OSError: disk"), "f", {}, "dealer", "deal", **policy)
    assert type(caught.value) is failed and caught.value.party == "dealer"
    with pytest.raises(malformed, match=f"its node {NODE} sent no 'f' record") as caught:
        _read(_reply({"g": ConfigRecord({"cpu": 1.0})}), "f", {}, "dealer", "deal", **policy)
    assert type(caught.value) is malformed


def test_a_non_client_partys_error_field_is_its_refusal_unless_error_is_one_of_its_fields():
    reply = _reply({"q": ConfigRecord({"error": "Refused: no round key", "cpu": 0.5})})
    with pytest.raises(Refused, match="remote second server: Refused: no round key"):
        _read(reply, "q", {"cpu": _seconds}, "second server", "s1", **PARTY)
    assert _read(reply, "q", {"cpu": _seconds, "error": _text}, "second server", "s1", **PARTY) == {"cpu": 0.5, "error": "Refused: no round key"}
    assert _read(reply, "q", {"cpu": _float}, "client 1", "s1") == {"cpu": 0.5}  # a client's error field is no refusal


@pytest.mark.parametrize("value", [-1.0, float("inf"), "1.0", None])
def test_a_non_client_field_that_does_not_parse_or_is_missing_aborts_naming_it(value):
    record = {} if value is None else {"cpu": value}
    with pytest.raises(Aborted, match=rf"its node {NODE} sent d\.cpu = {value!r:.40}: not a finite number >= 0") as caught:
        _read(_reply({"d": ConfigRecord(record)}), "d", {"cpu": _seconds}, "key holder", "decrypt", **PARTY)
    assert type(caught.value) is Aborted and caught.value.stage == "decrypt"
