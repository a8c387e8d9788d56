"""CKKSRobust's stated dropout tolerance (review 14, fix 6) is exact: a round survives that many dropouts and is
refused with one more (no input rejected), for random n, f, m and min_clients."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import DropoutSchedule, Stage, secure_sum
from protocols.core.errors import ProtocolError
from protocols.he.robust import CKKSRobust


@st.composite
def rounds(draw):
    f = draw(st.integers(0, 1))
    n = draw(st.integers(2 * f + 2, 7))
    min_clients = draw(st.integers(1, min(3, n - 1)))  # m in [min_clients, n - 1] below must be non-empty
    m = draw(st.one_of(st.none(), st.integers(min_clients, n - 1)))
    return n, f, m, min_clients


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=rounds())
def test_the_stated_dropout_tolerance_is_what_the_round_survives_and_no_more(robust_keys, case):
    n, f, m, min_clients = case
    d = 8
    x = np.random.default_rng(n).normal(0, 0.3 / np.sqrt(d), (n, d))
    protocol = CKKSRobust(rule="multi_krum", f=f, m=m, norm_bound=1.0, min_clients=min_clients)
    protocol.use_secret_context(robust_keys.secret)
    tolerance = n - protocol.survivors_needed()
    if tolerance < 0:  # the round cannot run even with every client: refused, and the report would state 0
        with pytest.raises(ProtocolError):
            secure_sum(x, protocol=protocol, seed=1)
        return
    out = secure_sum(x, protocol=protocol, seed=1, dropouts=DropoutSchedule({i: Stage.MASKED_INPUT for i in range(tolerance)}))
    assert out.reports[0].guarantee.dropout_tolerance == tolerance
    with pytest.raises(ProtocolError):
        secure_sum(x, protocol=protocol, seed=2, dropouts=DropoutSchedule({i: Stage.MASKED_INPUT for i in range(tolerance + 1)}))
