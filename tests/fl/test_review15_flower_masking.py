"""Review 15, Flower deployment of SecAgg+: the ServerApp writes the run config every node builds its stack from.

Was a break (fixed: `node_pins` pins them for masking stacks): the node lines that `secagg flower-app` printed pinned only
stack, active and noise_multiplier, not what decides a masking round's n (clients, sample_fraction), so a ServerApp
that wrote a smaller sample_fraction into the run config got nodes that built SecAgg+ for fewer clients and accepted a
lower threshold (20 -> 5 participants: t 17 -> 3 on the complete graph), while two-server nodes pinned what decides
S1's min_clients."""

import json
import tomllib

import pytest

pytest.importorskip("flwr")

from fl.flower_engine import _client_setup, checked_against_node, config_from_run
from protocols.core.errors import Refused
from protocols.core.stack import innermost
from tests.fl.test_flower_pki import _node_lines


def test_a_masking_node_refuses_a_run_config_with_fewer_participants(tmp_path, capsys):
    """Every node line of `secagg flower-app` pins clients and sample_fraction for a masking stack: a run config with a
    lower sample_fraction is refused. Was a break (review 15): NODE_PINS lacked them, so the node built SecAgg+ for the
    lower n and accepted its lower t."""
    nodes = _node_lines([str(tmp_path / "app"), "--set", "clients=20", "--set", "stack=secagg+", "--set", "active=true",
                         "--set", "data=breast_cancer", "--set", "model=logreg"], capsys)
    run_config = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    honest = config_from_run(run_config)
    fewer = config_from_run({**run_config, "sample_fraction": 0.25})
    t_of = {c.participants: innermost(_client_setup(c)[2]).t for c in (honest, fewer)}
    assert t_of[honest.participants] > t_of[fewer.participants], t_of  # what the lowered run config would give the node
    for nc in nodes:
        assert checked_against_node(honest, nc) == honest
        with pytest.raises(Refused):
            checked_against_node(fewer, nc)


@pytest.mark.parametrize("active", [True, False], ids=["active", "passive"])
def test_a_masking_node_refuses_a_session_of_an_earlier_round(active):
    """Break 6's replay needs one session over several rounds: a node that joined a round under a session refuses that
    session in a later round (at any layer), and joins the later round under a fresh one. (The consistency signatures
    bind each round's keys as well, so a replay fails without this check: tests/protocols/test_review15_replay.py.)"""
    from flwr.app import Context, RecordDict

    from fl.flower_engine import _join
    from secagg.randomness import SeededRandomness

    stack = _client_setup(config_from_run({"stack": "secagg+", "active": active, "clients": 4, "data": "breast_cancer", "model": "logreg"}))[2]
    node = Context(run_id=7, node_id=1, node_config={"partition-id": 0, "num-partitions": 4}, state=RecordDict(), run_config={})
    first, fresh = (json.loads(json.dumps(stack.open_round(4, 62, SeededRandomness(s)).public)) for s in (1, 2))
    _join(node, 1, first, stack)
    with pytest.raises(Refused, match="earlier round"):
        _join(node, 2, first, stack)
    _join(node, 2, fresh, stack)


def test_a_masking_node_refuses_a_run_config_with_a_lower_dropout(tmp_path, capsys):
    """SecAgg+'s k comes from the dropout the run config states (n^2 (gamma + delta)^k <= 2^-40: dropouts must not cut the
    graph). A ServerApp that writes dropout 0 where 30% of the clients drop gets nodes that build k = 24 instead of 78, and
    real dropouts then cut the graph with probability about 2^-23 instead of below 2^-40 (the server learns each part's
    sum). Every node line pins dropout for a masking stack, so such a run config is refused."""
    import math

    nodes = _node_lines([str(tmp_path / "app"), "--set", "clients=100", "--set", "sample_fraction=1.0", "--set", "stack=secagg+",
                         "--set", "dropout=0.3", "--set", "data=breast_cancer", "--set", "model=logreg"], capsys)
    run_config = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    honest = config_from_run(run_config)
    lower = config_from_run({**run_config, "dropout": 0.0})
    k_of = {c.dropout: innermost(_client_setup(c)[2]).k for c in (honest, lower)}
    assert 2 * math.log2(100) + k_of[0.0] * math.log2(0.05 + 0.3) > -40 > 2 * math.log2(100) + k_of[0.3] * math.log2(0.05 + 0.3), k_of
    for nc in nodes:
        assert checked_against_node(honest, nc) == honest
        with pytest.raises(Refused, match="dropout"):
            checked_against_node(lower, nc)
