"""Second-round review, issue 14: the Flower key-holder node's ledger file (`_held_ledger`, `ledger_path`).

Claim (fl.flower_engine._held_ledger / decrypt docstrings): the file is the record; every message is checked
against every earlier release of the node, whatever node-state copy the message carries, so a deviating
aggregator gets at most the policy's releases a round."""

import threading

import pytest

pytest.importorskip("flwr", reason="the Flower engine is the optional extra '.[flower]'")

from flwr.app import Context, RecordDict  # noqa: E402

from fl.flower_engine import _held_ledger, ledger_path  # noqa: E402
from protocols.core.errors import Refused  # noqa: E402

S1, S2 = bytes.fromhex("0000000511111111"), bytes.fromhex("0000000522222222")  # round 5, two sessions


def _context(path, run_id=1):
    return Context(run_id=run_id, node_id=7, node_config={"partition-id": 3, "num-partitions": 4, "he-ledger-file": str(path)},
                   state=RecordDict(), run_config={})


def _release(context, session, run="1"):
    """One decrypt message's ledger step, as he_key_holder.handle does it: open, then record the release."""
    with _held_ledger(context) as ledger:
        round_, entry = ledger.open(run, session)
        if entry["released"]:
            raise Refused("SUM already released", party="key holder", stage="decrypt")
        ledger.record(run, round_, {**entry, "released": entry["released"] + [1]})


def test_a_second_session_for_a_round_is_refused_across_messages_with_stale_state(tmp_path):
    path = tmp_path / "ledger.json"
    _release(_context(path), S1)
    with pytest.raises(Refused):
        _release(_context(path), S2)
    with pytest.raises(Refused):
        _release(_context(path), S1)


def test_an_exception_after_recording_still_writes_the_release(tmp_path):
    """Crash between check and write (an exception after the release was recorded): the record is on file."""
    path = tmp_path / "ledger.json"
    with pytest.raises(RuntimeError):
        with _held_ledger(_context(path)) as ledger:
            round_, entry = ledger.open("1", S1)
            ledger.record("1", round_, {**entry, "released": [1]})
            raise RuntimeError("crash after the decryption")
    with pytest.raises(Refused):
        _release(_context(path), S2)


def test_concurrent_threads_in_one_process_get_one_release(tmp_path):
    """Flower may run messages as threads of one process: flock is per open file, the tmp name per pid."""
    path = tmp_path / "ledger.json"
    outcomes: list[str] = []

    def worker(session):
        try:
            _release(_context(path), session)
            outcomes.append("released")
        except Refused:
            outcomes.append("refused")
        except OSError as exc:  # a shared .pid.tmp name between threads would surface here
            outcomes.append(f"oserror {exc}")

    threads = [threading.Thread(target=worker, args=(S1 if i % 2 else S2,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert outcomes.count("released") == 1, outcomes


def test_a_same_run_id_different_session_shared_file_cannot_reopen_under_another_run(tmp_path):
    """Different run ids in one node sharing he-ledger-file: the run-1 session cannot be replayed under run 2."""
    path = tmp_path / "ledger.json"
    _release(_context(path, run_id=1), S1, run="1")
    with pytest.raises(Refused):
        _release(_context(path, run_id=2), S1, run="2")


def test_a_deleted_ledger_file_does_not_reset_the_record(tmp_path, monkeypatch):
    """The file is the record: if it disappears while a message's node state still carries releases, the node
    refuses rather than start from that (possibly stale) copy. Removing the node's own file and state together
    is not in another party's power (the default is a folder of the node's own, not /tmp): then it starts afresh."""
    path = tmp_path / "ledger.json"
    first = _context(path)
    _release(first, S1)
    path.unlink()
    carried = _context(path)
    carried.state.config_records["ledger"] = first.state.config_records["ledger"]  # node state as Flower carries it
    with pytest.raises(Refused, match="missing"):
        _release(carried, S2)
    monkeypatch.delenv("SECAGG_LEDGER_DIR", raising=False)  # the suite's own folder (tests/conftest.py); a node's default:
    assert ".secagg" in str(ledger_path(Context(run_id=1, node_id=7, node_config={}, state=RecordDict(), run_config={}))).split("/")
    monkeypatch.setenv("SECAGG_LEDGER_DIR", str(tmp_path / "elsewhere"))
    assert ledger_path(Context(run_id=1, node_id=7, node_config={}, state=RecordDict(), run_config={})) == tmp_path / "elsewhere" / "7-1.ledger.json"
