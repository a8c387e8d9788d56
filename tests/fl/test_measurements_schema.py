"""A remote client's measurements are checked against what its stack's layers declare (`Protocol.reported`,
`protocols.core.measurements.parse_measurements`, used by S0 on Flower): an honest client's report of every Flower
stack passes unchanged, and a Byzantine client's report with any leaf, name or counter changed to one the layers do
not produce is refused (`MalformedMessage`), never another exception."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.experiment import FLOWER_STACKS, ExperimentConfig, build_stack
from protocols import SecAgg
from protocols.core.errors import MalformedMessage
from protocols.core.measurements import MAX_JSON, parse_measurements
from protocols.core.pki import ClientIdentity, KeyDirectory
from protocols.layers import AdaptiveClip, DistributedNoise, TopK
from secagg import SeededRandomness

D = 8


def _honest(stack_name: str, adaptive: bool = False):
    """(stack, one honest client's measurements as JSON text) of a 5-client round of `stack_name` (d = 8)."""
    config = ExperimentConfig(engine="flower-sim", stack=stack_name, clients=5, data="breast_cancer", model="logreg", sample_fraction=1.0)
    initial = np.zeros(D)
    stack = build_stack(config, D, initial)
    if adaptive:
        stack = AdaptiveClip(norm=0.05, target_quantile=0.5, learning_rate=0.5, count=DistributedNoise("skellam", 0.5, 1.0, 1.0, SecAgg(bits=16)),
                             inner=TopK(2, stack))
    rng = SeededRandomness(1)
    opened = stack.open_round(5, D, rng)
    if opened.use_roster is not None:
        opened.seat(list(range(5)), KeyDirectory())
    measured: dict = {}
    identity = {"identity": ClientIdentity.simulated(0)} if opened.use_roster is not None else {}
    stack.client_role(0, np.full(D, 0.3), json.loads(json.dumps(opened.public)), rng.fork("client 0"), measured, **identity)
    return stack, json.dumps(measured)


def _parse(stack, text):
    return parse_measurements(text, stack.reported(), sender="its node 101", party="client 0", stage="training")


@pytest.mark.parametrize("name", [*FLOWER_STACKS, "secagg+ under adaptive clip"])
def test_an_honest_clients_measurements_pass_unchanged(name):
    stack, text = _honest(name.split()[0], adaptive=name != name.split()[0])
    assert _parse(stack, text) == json.loads(text)


def _leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    else:
        yield path, value


def _set(value, path, new):
    out = json.loads(json.dumps(value))
    here = out
    for k in path[:-1]:
        here = here[k]
    here[path[-1]] = new
    return out


JUNK = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                 st.sampled_from([math.nan, math.inf, -math.inf, -1.0, -1e-9, 2.0, 0.5, 1e300]))


@given(data=st.data(), name=st.sampled_from(["ddp+secagg+", "hidden-state", "secagg+ under adaptive clip"]))
@settings(max_examples=60, deadline=None)
def test_a_byzantine_clients_changed_measurements_are_refused_or_valid(data, name):
    """One leaf replaced: by junk (no number, not finite, negative, a counter outside {0, 1}, text where a number is due):
    refused, unless the junk is a value the layer does produce there (a clipped flag 0/1, a finite seconds >= 0, text
    for a key); one name removed or added (in a layer, or a layer the stack has not): refused."""
    stack, text = _honest(name.split()[0], adaptive=name != name.split()[0])
    honest = json.loads(text)
    leaves = list(_leaves(honest))
    path, value = data.draw(st.sampled_from(leaves))
    how = data.draw(st.sampled_from(["junk", "remove", "add", "add a layer"]))
    if how == "junk":
        new = data.draw(JUNK)
        changed = _set(honest, path, new)
        valid = (isinstance(value, str) and isinstance(new, str)) or (
            not isinstance(new, bool) and isinstance(new, (int, float)) and math.isfinite(new) and new >= 0
            and (path[-1] == "seconds" or new in (0, 1)))
    else:
        changed = json.loads(text)
        here = changed
        for k in path[:-1]:
            here = here[k]
        if how == "remove":
            del here[path[-1]]
        elif how == "add a layer":
            changed["a layer of no stack"] = {"seconds": 0.0}
        else:
            here[path[-1] + "x"] = 0.0
        valid = False
    if valid:
        assert _parse(stack, json.dumps(changed)) == changed
    else:
        with pytest.raises(MalformedMessage, match="its node 101 sent measurements"):
            _parse(stack, json.dumps(changed))


def test_measurements_over_the_size_cap_or_not_text_are_refused():
    stack, text = _honest("ddp+secagg+")
    with pytest.raises(MalformedMessage, match=f"at most {MAX_JSON}"):
        _parse(stack, text + " " * (MAX_JSON + 1 - len(text)))
    with pytest.raises(MalformedMessage, match="not JSON text"):
        _parse(stack, text.encode())
    assert _parse(stack, text + " " * (MAX_JSON - len(text)))  # at the cap: parsed
