"""Review 10 (1, 6): after da2d130 (numeric_error counts S0's rounding of the carry, sqrt(d)/2 an iteration after the
first) and 909f680 (S0's collector parses a bundle's seed frame before it records the sealed share). Attacks: is the
stated error a bound away from review 9's far-inputs strategy (inputs near v with large tau so every weight is 1 or
close to it, larger d, m up to 9, up to 5 iterations, NNM), against the exact float64 rule; and does any bundle the
collector refuses, whatever byte of it is corrupted, leave a sealed share, signature or seed behind. Both held."""

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from protocols.core.errors import ProtocolError
from protocols.core.messages import Kind
from protocols.core.wire import SERVER, Frame, Writer, encode_frame
from protocols.two_server.client import SIGNATURE_BYTES, ShareCollector
from tests.protocols.test_review8_fixes import SETTINGS
from tests.protocols.test_review9_clipping_error import _excess


@st.composite
def near_and_mixed_inputs(draw):
    """Inputs near one another (weights 1 or close, so the carry m - F is small) or a mix of a tight cluster and far
    outliers; tau from tiny to larger than every distance."""
    m, d = draw(st.integers(3, 9)), draw(st.integers(1, 12))
    spread = draw(st.sampled_from([3, 50, 2_000, 60_000]))
    centre = draw(st.lists(st.integers(-20_000, 20_000), min_size=d, max_size=d))
    x = [[c + draw(st.integers(-spread, spread)) for c in centre] for _ in range(m)]
    return {"x": x, "tau": draw(st.sampled_from([0.5, 1.0, 7.0, 300.0, 1e5, 1e7])), "iterations": draw(st.integers(1, 5)),
            "pre": draw(st.sampled_from([None, "nnm"])), "seed": draw(st.integers(0, 2**16))}


@given(case=near_and_mixed_inputs())
@settings(max_examples=40, **SETTINGS)
def test_numeric_error_bounds_the_distance_to_the_exact_rule_for_near_and_mixed_inputs(case):
    """Holds: |two-server centered clipping - exact float64 centered clipping| <= numeric_error, over m, d, tau,
    iterations and NNM, with inputs near v (weights 1) and mixes of a cluster and outliers. Near inputs carry little
    (m - F is small), so this passes without da2d130 too; review 9's far-inputs test is the one that catches its removal."""
    error, stated, _ = _excess(**case)
    event("refused" if stated == 0 else "released")
    assert error <= stated + 1e-9, f"{error:.4f} from the exact rule, numeric_error says <= {stated:.4f}"


def test_the_carry_term_is_needed():
    """The bound is not vacuous: removing the carry's sqrt(d)/2 an iteration after the first (the fix) leaves a stated
    error below the observed one for some input of a small search (far inputs, d = 1, two iterations), so the regressions
    here and in review 9's file fail without the fix."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for seed in range(40):
        m, d, iterations = int(rng.integers(3, 6)), 1, 2
        x = rng.integers(-100_000, 100_000, (m, d)).tolist()
        error, stated, _ = _excess(x, float(rng.integers(1, 400)), iterations, None, seed)
        worst = max(worst, error - (stated - (iterations - 1) * 0.5 * np.sqrt(d)))
    assert worst > 0, "no input needed the carry term: this regression would not catch its removal"


SESSION = bytes(8)


def _bundle(link: int = 2) -> bytes:
    seed = Frame(Kind.SHARE_SEED, SESSION, link, SERVER, bytes(range(32)))
    return encode_frame(Frame(Kind.SEALED_SHARE, SESSION, link, SERVER,
                              Writer().blob(encode_frame(seed)).blob(b"sealed share of S1").blob(bytes(SIGNATURE_BYTES)).getvalue()))


def test_control_an_intact_bundle_is_recorded_whole():
    collector = ShareCollector(6, SESSION)
    collector.receive(_bundle(), 2)
    assert collector.seeds[2] == bytes(range(32)) and bytes(collector.sealed[2]) == b"sealed share of S1" and 2 in collector.signatures


@given(position=st.integers(0, 10_000), value=st.integers(0, 255), cut=st.booleans(), extra=st.binary(min_size=0, max_size=3))
@settings(max_examples=150, **SETTINGS)
def test_a_bundle_the_collector_refuses_leaves_nothing_recorded(position, value, cut, extra):
    """Holds: any bundle corrupted by one byte, truncated or extended that the collector refuses (a ProtocolError naming
    client 2) leaves no seed, sealed share or signature of client 2."""
    data = bytearray(_bundle())
    if cut:
        data = data[: position % len(data)]
    else:
        data[position % len(data)] = value
    data = bytes(data) + extra
    collector = ShareCollector(6, SESSION)
    try:
        collector.receive(data, 2)
    except ProtocolError as exc:
        assert exc.party == "client 2"
        assert 2 not in collector.seeds and 2 not in collector.sealed and 2 not in collector.signatures
        return
    # accepted: then it parsed whole, and a seed is recorded only with its sealed share beside it (or none of either)
    assert (2 in collector.seeds) <= (2 in collector.sealed)


@pytest.mark.parametrize("kind", [Kind.SEALED_SHARE, Kind.VECTOR])
def test_a_seed_frame_of_another_kind_or_sender_is_refused_and_leaves_nothing(kind):
    seed = Frame(kind, SESSION, 3, SERVER, bytes(32))  # names client 3 inside client 2's bundle
    bundle = encode_frame(Frame(Kind.SEALED_SHARE, SESSION, 2, SERVER,
                                Writer().blob(encode_frame(seed)).blob(b"sealed").blob(bytes(SIGNATURE_BYTES)).getvalue()))
    collector = ShareCollector(6, SESSION)
    with pytest.raises(ProtocolError):
        collector.receive(bundle, 2)
    assert not collector.seeds and not collector.sealed and not collector.signatures
