"""Review attacks on the Flower deployment client's parameter check (fl.flower_engine.checked_against_node).

Claim attacked: "The run's experiment, if every experiment field the node's own config pins ... has the
same value in it; the stack a client builds (its threshold, its noise) then follows the node's values"
(issue 14 item 5: a client checks the stack parameters it is sent against its own node config).
The server writes the run config; the node operator writes the node config.
"""

import pytest

flwr = pytest.importorskip("flwr")

from fl.flower_engine import checked_against_node, config_from_run  # noqa: E402
from protocols.core.errors import Refused  # noqa: E402

VALUES = {"clients": 3, "rounds": 1, "stack": "secagg+", "data": "breast_cancer", "model": "logreg", "sample_fraction": 1.0}


def test_control_a_pinned_field_the_server_changes_is_refused():
    with pytest.raises(Refused):
        checked_against_node(config_from_run({**VALUES, "noise_multiplier": 0.0}), {"partition-id": 0, "noise_multiplier": 0.8})


@pytest.mark.parametrize("pin", [{"noise-multiplier": 0.8}, {"t": 50}, {"Stack": "secagg+"}], ids=["flower-hyphen-key", "not-a-field", "case"])
def test_a_node_pin_the_client_cannot_check_is_not_silently_ignored(pin):
    """The server sends noise_multiplier=0 and stack=plain; the node pinned a value under a key the check does not
    know (Flower's own hyphenated style, a protocol parameter, a capitalised key). The check skips unknown keys,
    so the run is accepted with the server's values: it must refuse (fail closed), naming the key."""
    run = config_from_run({**VALUES, "noise_multiplier": 0.0, "stack": "plain"})
    with pytest.raises((Refused, ValueError)):
        checked_against_node(run, {"partition-id": 0, "num-partitions": 3, **pin})
