"""Protocol correctness as hypothesis properties: exact sums over the survivors, aborts exactly
when the survivor model predicts, and the stated dropout tolerance."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import BelowThreshold, DropoutSchedule, PlainSum, SecAgg, SecAggPlus, Stage, secure_sum
from protocols.testing import RoundCase, check_round, check_sum, ring_inputs, rounds, schedules
from secagg import SeededRandomness


@settings(max_examples=80, deadline=None)
@given(rounds())
def test_unmasked_sum_equals_plain_sum_of_survivors_or_aborts_as_predicted(case):
    check_round(case)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(30, 120), seed=st.integers(0, 2**32), data=st.data())
def test_for_clients_tolerates_its_stated_dropouts(n, seed, data):
    protocol = SecAggPlus.for_clients(n, bits=16, dropout=0.1)
    tolerance = protocol.k - protocol.t
    schedule = data.draw(schedules(n, max_rate=min(tolerance / n, 0.5)))
    case = RoundCase(data.draw(ring_inputs(n, 3, 16)), protocol, schedule, seed)
    out = check_round(case)
    assert out is not None
    assert out.reports[0].guarantee.dropout_tolerance == tolerance


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 30), d=st.integers(1, 50), bits=st.integers(1, 64), data=st.data())
def test_plain_sum_is_the_sum_of_the_clients_that_sent(n, d, bits, data):
    inputs = data.draw(ring_inputs(n, d, bits))
    schedule = data.draw(schedules(n, stages=(Stage.MASKED_INPUT,), max_rate=0.9))
    out = secure_sum(inputs, protocol=PlainSum(bits=bits), dropouts=schedule, seed=1)
    assert out.included == tuple(i for i in range(n) if i not in schedule.drops)
    check_sum(inputs, out, bits)


def test_all_dropped_plain_sum_aborts():
    inputs = np.zeros((2, 3), dtype=np.uint32)
    with pytest.raises(BelowThreshold):
        secure_sum(inputs, protocol=PlainSum(), dropouts=DropoutSchedule({0: Stage.MASKED_INPUT, 1: Stage.ADVERTISE_KEYS}))


def test_server_memory_stays_o_of_d_not_n_times_d():
    """Masked inputs are added into one accumulator as they arrive: peak traced memory of a round
    stays far below the n * d * 4 bytes that holding every masked input would take."""
    import tracemalloc

    n, d = 100, 20_000  # the message path copies a vector about ten times: O(d), whatever n
    inputs = np.ones((n, d), dtype=np.uint32)
    tracemalloc.start()
    try:
        secure_sum(inputs, protocol=SecAggPlus(n=n, k=6, t=4), seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n * d * 4 / 4, f"peak {peak:,} bytes for n*d*4 = {n * d * 4:,}"


def test_report_counts_real_bytes_and_rounds():
    n, d = 12, 1000
    inputs = np.zeros((n, d), dtype=np.uint32)
    out = secure_sum(inputs, protocol=SecAggPlus(n=n, k=6, t=4), seed=3)
    cost = out.reports[0].cost
    assert cost.rounds == 4
    # the masked vector alone is d * 4 bytes; keys, shares and framing add O(k) on top
    assert d * 4 < cost.bytes_up_mean < d * 4 + 6 * 300
    plain = secure_sum(inputs, protocol=PlainSum(), seed=3).reports[0].cost
    assert plain.rounds == 1 and plain.bytes_up_max == d * 4 + 5 + 24 + 32


@pytest.mark.parametrize(
    "protocol, message",
    [
        (SecAgg(t=2, active=True), "t must be in \\[5, 9\\]"),
        (SecAgg(t=0), "t must be in \\[1, 9\\]"),
        (SecAggPlus(n=10, k=3, t=2), "k must be even"),
        (SecAggPlus(n=10, k=4, t=2, active=True), "t must be in \\[3, 4\\]"),
        (SecAggPlus(n=11, k=4, t=3), "configured for n=11"),
    ],
)
def test_bad_parameters_are_refused(protocol, message):
    with pytest.raises(ValueError, match=message):
        secure_sum(np.zeros((10, 2), dtype=np.uint32), protocol=protocol, seed=0)


def test_inputs_of_the_wrong_ring_are_refused():
    with pytest.raises(TypeError, match="uint16"):
        secure_sum(np.zeros((5, 2), dtype=np.uint32), protocol=SecAgg(bits=16), seed=0)


SOAK_SCHEDULES = int(os.environ.get("SOAK_SCHEDULES", "10000"))


@pytest.mark.soak
@pytest.mark.parametrize("make", [lambda n, b: SecAgg(bits=b), lambda n, b: SecAgg(bits=b, active=True),
                                  lambda n, b: SecAggPlus(n=n, k=4, t=3, bits=b), lambda n, b: SecAggPlus(n=n, k=4, t=3, bits=b, active=True)])
def test_soak_ten_thousand_random_schedules(make):
    rng = SeededRandomness(2026)
    for i in range(SOAK_SCHEDULES):
        n = 6 + rng.below(7)
        bits = 1 + rng.below(64)
        inputs = np.stack([SeededRandomness(i * 64 + j).uint64(3) for j in range(n)]).astype(np.uint64)
        inputs = (inputs & np.uint64((1 << bits) - 1)).astype(SecAgg(bits=bits).ring.dtype)
        schedule = DropoutSchedule.random(n, rng.below(40) / 100, rng)
        check_round(RoundCase(inputs, make(n, bits), schedule, i))
