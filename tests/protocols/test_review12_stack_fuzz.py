"""Review 12 (1): stacks are data, so fuzz them. A stack of 1-4 transform layers (small field values) over one protection,
StackContext(dim=8, participants=6), inputs within the clip bound. The property: `build` either refuses with a StackError,
or one `secure_sum` round either completes or raises a ProtocolError (a typed refusal); never another exception type (a
stack that builds and then dies untyped every round, as reviews 9-11 found by hand). Each root cause found is a strict
xfail below, on the smallest stack that shows it."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.errors import ProtocolError
from protocols.core.stack import LayerSpec, StackContext, StackError, build, format_specs, parse

D, N = 8, 6
Z = st.sampled_from([0.5, 1.0, 2.0])

TRANSFORMS = st.one_of(
    st.builds(lambda b: LayerSpec.of("clip", bound=b), st.sampled_from([0.25, 0.5, 1.0, 4.0])),  # 0.25 clips the inputs (norm 0.45)
    st.builds(lambda z: LayerSpec.of("adaptive-clip", norm=1.0, count_noise_multiplier=z), st.sampled_from([0.0, 1.0])),
    st.builds(lambda z: LayerSpec.of("gaussian", noise_multiplier=z), st.sampled_from([0.0, 1.0])),
    st.builds(lambda z: LayerSpec.of("local-dp", noise_multiplier=z), Z),
    st.builds(lambda z: LayerSpec.of("central-dp", noise_multiplier=z), Z),
    st.sampled_from([LayerSpec.of("discretize"), LayerSpec.of("discretize", fit="norm"), LayerSpec.of("discretize", fit="scaled"),
                     LayerSpec.of("discretize", fit="noise"), LayerSpec.of("discretize", scale=16.0)]),
    st.builds(lambda z: LayerSpec.of("skellam", noise_multiplier=z), Z),
    st.builds(lambda z: LayerSpec.of("ddg", noise_multiplier=z), Z),
    st.builds(lambda m, z: LayerSpec.of("ddp", mechanism=m, noise_multiplier=z), st.sampled_from(["skellam", "ddg"]), Z),
    st.builds(lambda q: LayerSpec.of("quantize", q=q), st.sampled_from([2, 8])),
    st.builds(lambda f: LayerSpec.of("topk", fraction=f), st.sampled_from([0.25, 1.0])),
    st.builds(lambda k: LayerSpec.of("randk", k=k), st.sampled_from([2, 8])),
    st.builds(lambda k: LayerSpec.of("rotation", kind=k), st.sampled_from(["hadamard", "dft"])),
)

CHEAP_LEAVES = st.sampled_from([
    LayerSpec.of("plain"), LayerSpec.of("robust", rule="krum", f=1), LayerSpec.of("robust", rule="trimmed_mean", f=1),
    LayerSpec.of("robust", rule="mean", pre="nnm", f=1), LayerSpec.of("robust", rule="krum", pre="bucketing", bucket=2),
    LayerSpec.of("robust", rule="geometric_median", pre="bucketing", bucket=3), LayerSpec.of("secagg"), LayerSpec.of("secagg", bits=20),
    LayerSpec.of("secagg", t=5), LayerSpec.of("secagg", t=6), LayerSpec.of("secagg+", bits=48), LayerSpec.of("secagg+", bits=62),
    LayerSpec.of("secagg+"), LayerSpec.of("secagg+", active=True), LayerSpec.of("two-server", rule="krum", f=1),
    LayerSpec.of("two-server", rule="coordinate_median", f=1), LayerSpec.of("two-server", rule="norm_bounding", f=1, pre="nnm"),
])
HE_LEAVES = st.sampled_from([LayerSpec.of("ckks"), LayerSpec.of("bfv"), LayerSpec.of("bfv", bits=36), LayerSpec.of("bfv", bits=48),
                             LayerSpec.of("ckks-robust", rule="krum", f=1)])
LEAVES = st.one_of(CHEAP_LEAVES, CHEAP_LEAVES, CHEAP_LEAVES, HE_LEAVES)  # CKKS/BFV rounds are slow: drawn a quarter of the time

# most drawn stacks start with a clip (the noise, discretize and quantize layers need one): fewer are refused at build
STACKS = st.builds(lambda clip, t, leaf: ((LayerSpec.of("clip", bound=1.0),) if clip else ()) + (*t, leaf),
                   st.booleans(), st.lists(TRANSFORMS, min_size=1, max_size=4), LEAVES).filter(lambda s: len(s) <= 5)


def _inputs() -> np.ndarray:
    x = np.random.default_rng(1).normal(size=(N, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True) * 0.45).astype(np.float32)  # within every clip bound drawn but 0.25


def _one_round(specs) -> str:
    """'refused' (StackError at build), 'completed' or 'aborted' (a ProtocolError); anything else propagates."""
    try:
        protocol = build(specs, StackContext(dim=D, participants=N))
    except StackError:
        return "refused"
    try:
        secure_sum(_inputs(), protocol=protocol, seed=5)
    except ProtocolError:
        return "aborted"
    except Exception as exc:  # noqa: BLE001  the property's failure, with the stack named
        raise AssertionError(f"{format_specs(specs)} built, then the round raised {type(exc).__name__}: {exc}") from exc
    return "completed"


_FUZZ = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None)


def _ring_of(specs) -> int:
    return specs[-1].values.get("bits", 32)


def _wide_ring_rounding(specs) -> bool:  # discretizing into a ring of >= 60 bits (the float scale outgrows float32 precision)
    # with a noise layer inside, review 12's share-variance cap lowers the scale to ~1e5 and the round completes (review 13)
    layers = {s.layer for s in specs}
    return _ring_of(specs) >= 60 and "discretize" in layers and not layers & {"skellam", "ddg", "ddp"}


KNOWN = (_wide_ring_rounding,)  # root causes pinned below as strict xfails: the fuzzer skips their stacks so it looks for new ones
# (secagg's t of every participant, bucketing below the rule's rows, quantize over bfv and bfv wider than its plain modulus
# were too: the first, second and fourth are now refused at build, quantize reads bfv's ring from its bits)


def _known(specs) -> bool:
    return any(k(specs) for k in KNOWN)


@settings(max_examples=300, **_FUZZ)
@given(STACKS)
def test_a_stack_that_builds_runs_or_refuses_typed(specs):
    if not _known(specs):
        _one_round(specs)


@pytest.mark.slow
@pytest.mark.soak  # slow alone runs by default (pyproject's addopts exclude soak only): ~30 s on one core
@settings(max_examples=2000, **_FUZZ)
@given(STACKS)
def test_slow_a_stack_that_builds_runs_or_refuses_typed(specs):
    if not _known(specs):
        _one_round(specs)


def test_quantize_over_bfv_runs_or_is_refused_at_build():
    assert _one_round(parse("clip(bound=1) > quantize(q=8) > bfv")) in ("refused", "completed", "aborted")


def test_control_discretize_over_bfv_runs():
    assert _one_round(parse("clip(bound=1) > discretize > bfv")) == "completed"


def test_control_quantize_over_secagg_runs():
    assert _one_round(parse("clip(bound=1) > quantize(q=8) > secagg")) == "completed"


def test_control_the_fuzzer_fails_on_an_untyped_error(monkeypatch):
    """The property can fail: a protection that raises an untyped error in its round is reported, naming the stack."""
    from protocols.layers.discretize import DiscreteEncode

    def broken(self, *args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(DiscreteEncode, "encode", broken)
    with pytest.raises(AssertionError, match="discretize > secagg built, then the round raised KeyError"):
        _one_round(parse("clip(bound=1) > discretize > secagg"))


def test_secagg_with_t_of_every_participant_runs_or_is_refused_at_build():
    assert _one_round(parse("clip(bound=1) > discretize > secagg(t=6)")) in ("refused", "completed", "aborted")


def test_control_secagg_with_t_of_every_neighbour_runs():
    assert _one_round(parse("clip(bound=1) > discretize > secagg(t=5)")) == "completed"


@pytest.mark.parametrize("rule", ["krum", "geometric_median", "trimmed_mean"])
def test_bucketing_below_the_rules_rows_runs_or_is_refused_at_build(rule):
    assert _one_round(parse(f"clip(bound=1) > robust(rule={rule}, pre=bucketing, bucket=3)")) in ("refused", "completed", "aborted")


def test_control_bucketing_with_enough_rows_runs():
    assert _one_round(parse("clip(bound=1) > robust(rule=krum, pre=bucketing, bucket=2)")) == "completed"


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="in a ring of >= 60 bits the scale is ~1e17 integer units per update unit: an "
                   "input the clip left at its bound in float32 (norm 1 + 6e-8) exceeds the rounded-norm bound by ~1e10 units, so "
                   "conditional rounding fails every try and the round raises ValueError: conditional rounding failed 1000 times")
@pytest.mark.parametrize("stack", ["discretize > secagg+(bits=62)", "discretize(fit=norm) > secagg(bits=60)"])
def test_a_wide_ring_under_a_clip_that_clips_runs_or_is_refused_at_build(stack):
    assert _one_round(parse(f"clip(bound=0.25) > {stack}")) in ("refused", "completed", "aborted")


def test_control_the_same_clip_into_a_56_bit_ring_runs():
    assert _one_round(parse("clip(bound=0.25) > discretize > secagg+(bits=56)")) == "completed"


@pytest.mark.parametrize("bits", [40, 48])
def test_bfv_with_a_ring_wider_than_its_plain_modulus_runs_or_is_refused_at_build(bits):
    assert _one_round(parse(f"clip(bound=1) > discretize > bfv(bits={bits})")) in ("refused", "completed", "aborted")


def test_control_bfv_at_36_bits_runs():
    assert _one_round(parse("clip(bound=1) > discretize > bfv(bits=36)")) == "completed"
