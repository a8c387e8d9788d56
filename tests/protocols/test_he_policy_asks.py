"""What an aggregator asks (`HeAggregation.asks`) and the key holder compares (`KeyHolderPolicy.check_asked`, review 14
fixes 2 and 8): every field the aggregator's report is computed from must be the key holder's own, or it refuses by name."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.core.errors import Refused
from protocols.he.aggregation import BFVAggregation, CKKSAggregation
from protocols.he.policy import KeyHolderPolicy


@settings(max_examples=20, deadline=None)
@given(field=st.sampled_from(["min_clients", "flood_bits", "recompute", "bits"]), data=st.data())
def test_a_key_holder_refuses_an_aggregator_whose_report_fields_differ_from_its_policy(field, data):
    aggregator = BFVAggregation(min_clients=2, bits=16) if field == "bits" else CKKSAggregation(min_clients=2)
    asked = aggregator.asks()
    own = {"min_clients": st.integers(1, 9), "flood_bits": st.integers(0, 40), "recompute": st.booleans(), "bits": st.integers(2, 62)}[field]
    value = data.draw(own.filter(lambda v: v != asked[field]))
    policy = KeyHolderPolicy("sum", **{"min_clients": 2, "flood_bits": 10, "recompute": True, "bits": 16, field: value})
    with pytest.raises(Refused, match=f"{field}={asked[field]!r}.*{field}={value!r}"):
        policy.check_asked(asked)
    KeyHolderPolicy("sum", min_clients=2, flood_bits=10, recompute=True, bits=16 if field == "bits" else 32).check_asked(asked)


def test_the_node_config_sets_the_bfv_ring_and_refuses_a_ring_out_of_range():
    assert KeyHolderPolicy.from_config({"he-bits": "20"}).bits == 20 and KeyHolderPolicy.from_config({}).bits == 32
    with pytest.raises(ValueError, match="bits"):
        KeyHolderPolicy(bits=63)
