"""The Flower key-holder node's ledger under concurrent messages: Flower 1.42 runs each message as its own task
and does not promise one at a time, so two decrypt messages must never be checked against one stale copy."""

import multiprocessing

import pytest

pytest.importorskip("flwr", reason="the Flower engine is the optional extra '.[flower]'")

from flwr.app import Context, RecordDict  # noqa: E402

from fl.flower_engine import _held_ledger, ledger_path  # noqa: E402


def _context(path, node_id=7):
    return Context(run_id=1, node_id=node_id, node_config={"partition-id": 3, "num-partitions": 4, "he-ledger-file": str(path)},
                   state=RecordDict(), run_config={})


def _bump(path, times):
    for _ in range(times):
        with _held_ledger(_context(path)) as ledger:  # a fresh, stale node state each message
            entry = ledger.rounds.setdefault("run/1", {"session": "00" * 8, "released": [], "selection": None, "digests": {}})
            entry["released"].append("SUM")


def test_a_release_recorded_by_one_message_is_seen_by_a_message_holding_a_stale_node_state(tmp_path):
    path = tmp_path / "ledger.json"
    first, stale = _context(path), _context(path)
    with _held_ledger(first) as ledger:
        ledger.record("1", 5, {"session": "05" * 8, "released": ["SUM"], "selection": None, "digests": {}})
    with _held_ledger(stale) as ledger:  # its node state never saw the first message
        assert ledger.rounds["1/5"]["released"] == ["SUM"]


def test_concurrent_messages_never_lose_a_release(tmp_path):
    path = tmp_path / "ledger.json"
    workers = [multiprocessing.get_context("fork").Process(target=_bump, args=(path, 40)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert all(w.exitcode == 0 for w in workers)
    with _held_ledger(_context(path)) as ledger:
        assert len(ledger.rounds["run/1"]["released"]) == 120  # without the lock, read-modify-write loses some


def test_the_default_ledger_file_is_the_nodes_own():
    a, b = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={}), Context(run_id=1, node_id=2, node_config={}, state=RecordDict(), run_config={})
    assert ledger_path(a) != ledger_path(b) and ledger_path(a).name.startswith("1-1.")
