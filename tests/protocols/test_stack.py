"""A stack is data (protocols.core.stack): parsing, validation with errors that name the position, layer and
field, derived parameters, and every registered layer built from a spec and run for a small round."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.stack import REGISTRY, LayerSpec, StackContext, StackError, build, check, format_specs, from_tables, parse, traits
from protocols.layers import DiscreteEncode, DistributedNoise, L2Clip, RandK, RandomizedHadamard, distributed_dp
from protocols.masking import SecAggPlus
from protocols.robust import PREAGGREGATORS, RULES, aggregate
from protocols.two_server import TwoServerRobust
from secagg import SeededRandomness

N, D = 6, 8


def _inputs(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.3, (N, D)).astype(np.float32)


def _clipped(x: np.ndarray, bound: float = 1.0) -> np.ndarray:
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    return x * np.minimum(1.0, bound / norms)


def _run(text: str, x: np.ndarray, **ctx):
    protocol = build(parse(text), StackContext(dim=x.shape[1], participants=len(x), **ctx))
    return secure_sum(x, protocol=protocol, seed=3)


# Every registered layer, in a small stack that reaches it, with what its output must be.
EXACT_SUMS = [  # the decoded sum of the clipped inputs, up to the stated numeric error
    "clip(bound=1) > discretize > secagg+",
    "clip(bound=1) > discretize > secagg+(active=true)",
    "clip(bound=1) > discretize > secagg",
    "clip(bound=1) > discretize > secagg(active=true, bits=40)",
    "clip(bound=1) > rotation > discretize > secagg+",
    "clip(bound=1) > rotation(kind=dft) > discretize(fit=scaled) > secagg+",
    "clip(bound=1) > discretize(scale=1000.0) > bfv(bits=32)",
    "clip(bound=1) > ckks",
    "clip(bound=1) > quantize(q=12) > secagg+(bits=20)",
]


@pytest.mark.parametrize("text", EXACT_SUMS)
def test_every_summing_layer_builds_from_a_spec_and_sums(text):
    x = _inputs()
    out = _run(text, x)
    expected = _clipped(x)[list(out.included)].sum(axis=0)
    bound = sum(r.guarantee.numeric_error for r in out.reports) + 1e-6
    assert len(out.included) == N
    assert np.max(np.abs(out.result - expected)) <= bound


@pytest.mark.parametrize("text", [
    "clip(bound=1) > skellam(noise_multiplier=0.5) > secagg+(bits=24)",
    "clip(bound=1) > ddg(noise_multiplier=0.5) > secagg+(bits=24)",
    "clip(bound=1) > ddp(mechanism=ddg, noise_multiplier=0.5) > secagg(bits=24)",
    "clip(bound=1) > rotation > discretize > skellam(noise_multiplier=0.5) > secagg+(bits=24)",
    "clip(bound=1) > gaussian(noise_multiplier=0.5) > ckks",
    "adaptive-clip(norm=0.5, count_noise_multiplier=1) > clip(bound=1) > discretize > secagg+",
    "topk(k=3) > clip(bound=1) > discretize > secagg+",
    "clip(bound=1) > randk(fraction=0.5) > discretize > secagg+",
])
def test_noisy_and_compressing_layers_build_and_report_their_own_row(text):
    x = _inputs(1)
    out = _run(text, x)
    assert out.result.shape == (D,) and np.all(np.isfinite(out.result))
    names = {r.layer for r in out.reports}
    built = build(parse(text), StackContext(dim=D, participants=N))
    layer = built
    while layer is not None:  # every object the specs built reported
        assert layer.name in names
        layer = getattr(layer, "inner", None)
    if "noise_multiplier" in text.split(">")[-2] or "gaussian" in text:
        assert any(r.guarantee.epsilon is not None and r.guarantee.epsilon < math.inf for r in out.reports)


def test_rand_k_keeps_the_fraction_of_the_dimension_and_the_error_is_that_of_rand_k():
    x = _inputs(2)
    built = build(parse("clip(bound=1) > randk(fraction=0.5) > discretize > secagg+"), StackContext(dim=D, participants=N))
    assert isinstance(built.inner, RandK) and built.inner.k == D // 2
    assert built.inner.inner.inner.bits == 32
    out = secure_sum(x, protocol=built, seed=4)
    kept = out.result != 0
    assert kept.sum() == D // 2  # the other coordinates are zero; the kept ones are scaled by d / k
    assert np.allclose(out.result[kept], 2 * _clipped(x).sum(axis=0)[kept], atol=1e-3)


def test_top_k_keeps_each_clients_residual_across_rounds():
    built = build(parse("clip(bound=10) > topk(k=2) > plain"), StackContext(dim=D, participants=N))
    x = np.tile(np.arange(1, D + 1, dtype=np.float32) / 10, (N, 1))
    first = secure_sum(x, protocol=built, seed=1).result
    second = secure_sum(x, protocol=built, seed=2).result
    assert np.count_nonzero(first) == 2 and not np.allclose(first, second)  # the memory fed the second round
    # round 2 sends the top 2 of x + (what round 1 left): 2 x at coordinates 4 and 5 (1.0 and 1.2), not x's top 2 again
    assert np.flatnonzero(second).tolist() == [4, 5] and np.allclose(second[[4, 5]], 2 * x[0, [4, 5]])


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("pre", ["none", *sorted(PREAGGREGATORS)])
def test_each_robust_rule_with_its_pre_aggregator_and_its_own_f(rule, pre):
    x = _inputs(3).astype(np.float64)
    out = _run(f"robust(rule={rule}, f=1, pre={pre}, bucket=2)", x.astype(np.float32), f=2)
    params = out.reports[-1].guarantee.parameters
    assert params["f"] == 1 and params["rule"] == rule and params["pre"] == pre  # its own f, not the context's 2
    rows = x.astype(np.float32).astype(np.float64)
    pre_params = {"s": 2, "perm": SeededRandomness(bytes.fromhex(params["bucketing_seed"])).permutation(len(rows))} if pre == "bucketing" else {}
    assert np.allclose(out.result, aggregate(rows, 1, rule, pre=None if pre == "none" else pre, pre_params=pre_params), atol=1e-6)


@pytest.mark.parametrize("rule", ["krum", "multi_krum", "coordinate_median"])
def test_two_server_with_its_rule_and_derived_ring(rule):
    x = _inputs(4)
    out = _run(f"clip(bound=1) > discretize > two-server(rule={rule}, f=1)", x)
    assert out.result.shape == (D,)
    two = build(parse(f"clip(bound=1) > discretize > two-server(rule={rule}, f=1)"), StackContext(dim=D, participants=N)).inner.inner
    assert isinstance(two, TwoServerRobust) and two.bits == min(32, (63 - D.bit_length()) // 2) and two.f == 1


def test_two_server_over_nnm_shrinks_its_ring_for_the_mixing_sums():
    two = build(parse("clip(bound=1) > discretize > two-server(pre=nnm, f=1)"), StackContext(dim=D, participants=N)).inner.inner
    assert (D * N * N) << (2 * two.bits) < 1 << 63 <= (D * N * N) << (2 * (two.bits + 1))
    out = secure_sum(_inputs(5), protocol=build(parse("clip(bound=1) > discretize > two-server(pre=nnm, f=1)"),
                                                StackContext(dim=D, participants=N)), seed=1)
    assert out.result.shape == (D,)


def test_ckks_robust_and_hidden_state_and_local_and_central_dp():
    x = _inputs(6)
    out = _run("clip(bound=1) > ckks-robust(rule=krum, f=1)", x)
    assert out.result.shape == (D,)
    initial = np.ones(D)
    protocol = build(parse("clip(bound=1) > hidden-state"), StackContext(dim=D, participants=N, initial=initial))
    model = secure_sum(x, protocol=protocol, seed=1).result
    assert np.allclose(model, initial + _clipped(x).mean(axis=0), atol=1e-3)  # weight 1/m
    for text in ("clip(bound=1) > local-dp(noise_multiplier=1) > robust(rule=mean, f=0)",
                 "clip(bound=1) > central-dp(noise_multiplier=1) > robust(rule=trimmed_mean, f=1)"):
        out = _run(text, x)
        assert out.result.shape == (D,) and any(r.guarantee.epsilon is not None for r in out.reports)


def test_the_distributed_dp_spec_builds_exactly_the_recipe():
    protocol = build(parse("clip(bound=2) > skellam(noise_multiplier=0.7) > secagg+(bits=20)"),
                     StackContext(dim=30, participants=12, expected=10, byzantine=1))
    secagg = SecAggPlus.for_clients_or_complete(12, bits=20, dropout=0.01)
    recipe = distributed_dp(secagg, clients=12, dim=30, clip=2.0, noise_multiplier=0.7, expected_clients=10,
                            assume_colluding=1 + math.ceil(0.05 * 12))
    for a, b in ((protocol, recipe), (protocol.inner, recipe.inner), (protocol.inner.inner, recipe.inner.inner)):
        assert type(a) is type(b)
    assert isinstance(protocol.inner, RandomizedHadamard) and isinstance(protocol.inner.inner, DiscreteEncode)
    mine, theirs = protocol.inner.inner, recipe.inner.inner
    assert (mine.scale, mine.beta) == (theirs.scale, theirs.beta)
    assert isinstance(mine.inner, DistributedNoise)
    for name in ("local_variance", "l2_sensitivity", "l1_sensitivity", "assume_colluding", "mechanism"):
        assert getattr(mine.inner, name) == getattr(theirs.inner, name)
    assert isinstance(protocol, L2Clip) and protocol.norm == 2.0


def test_an_explicit_discretize_outside_the_noise_sizes_it_as_the_recipe_does():
    ctx = StackContext(dim=32, participants=12, expected=10)
    short = build(parse("clip(bound=1) > skellam(noise_multiplier=0.7) > secagg+(bits=20)"), ctx)
    long = build(parse("clip(bound=1) > rotation > discretize > skellam(noise_multiplier=0.7) > secagg+(bits=20)"), ctx)
    a, b = short.inner.inner, long.inner.inner
    assert a.scale == b.scale and a.beta == b.beta
    assert a.inner.local_variance == pytest.approx(b.inner.local_variance) and a.inner.l2_sensitivity == b.inner.l2_sensitivity


# The adversary here is whoever writes the stack: every malformed spec is refused with a StackError that says where.
@pytest.mark.parametrize("text, where", [
    ("clip(bound=1) > nope > secagg+", "position 2 layer 'nope'"),
    ("clip(bound=-1) > discretize > secagg+", "position 1 layer 'clip' field 'bound'"),
    ("clip(bound=1) > discretize > secagg+(bits=99)", "position 3 layer 'secagg+' field 'bits'"),
    ("clip(bound=1) > discretize > secagg+(bitz=20)", "field 'bitz'"),
    ("clip(bound=1) > discretize > secagg+(bits=twenty)", "field 'bits'"),
    ("clip > discretize > secagg+", "position 1 layer 'clip' field 'bound': is required"),
    ("clip(bound=1) > secagg+ > discretize", "position 2 layer 'secagg+'"),
    ("clip(bound=1) > discretize", "position 2 layer 'discretize'"),
    ("clip(bound=1, bound=2) > plain", "field 'bound': given twice"),
    ("clip(bound=1) >> plain", "empty layer"),
    ("clip(bound=1 > plain", "position 1"),
    ("robust(rule=bulyan)", "rule must be one of"),
    ("discretize > secagg+", "position 1 layer 'discretize': needs a clip layer"),
    ("clip(bound=1) > two-server", "position 2 layer 'two-server': takes ring, but the layer outside it (clip) gives floats"),
    ("clip(bound=1) > discretize > ckks", "position 3 layer 'ckks': takes floats, but the layer outside it (discretize) gives ring"),
    ("secagg+", "position 1 layer 'secagg+': takes ring, but the stack's inputs are floats"),
    ("clip(bound=1) > randk(k=3, fraction=0.5) > plain", "give exactly one of k and fraction"),
    ("clip(bound=1) > randk(k=30) > plain", "field 'k'"),
    ("clip(bound=1) > discretize(fit=noise) > secagg+", "field 'fit'"),
    ("hidden-state", "needs the initial model"),
    # a layer whose output norm is not bounded by the clip outside it hides that clip from the noise inside it
    ("clip(bound=1) > topk(k=3) > gaussian(noise_multiplier=1) > ckks", "position 3 layer 'gaussian': needs a clip layer"),
    ("adaptive-clip(norm=1) > skellam(noise_multiplier=1) > secagg+", "position 2 layer 'skellam': needs a clip layer"),
    ("clip(bound=1) > discretize > secagg+(bits=8)", "position 2 layer 'discretize'"),  # 6 participants cannot fit in 8 bits
])
def test_bad_specs_name_the_position_layer_and_field(text, where):
    with pytest.raises(StackError) as caught:
        build(parse(text), StackContext(dim=D, participants=N, dropout=0.0) if "8)" not in text else StackContext(dim=4096, participants=N))
    assert where in str(caught.value)
    assert isinstance(caught.value, ValueError)


_outer = st.sampled_from(["", "clip(bound=1) > ", "clip(bound=0.5) > rotation > ", "topk(k=2) > clip(bound=1) > ",
                          "clip(bound=1) > randk(fraction=0.5) > ", "adaptive-clip(norm=1) > clip(bound=1) > ", "clip(bound=1) > topk(fraction=0.3) > "])
_middle = st.sampled_from(["", "discretize > ", "discretize(fit=scaled) > ", "skellam(noise_multiplier=1) > ", "ddg(noise_multiplier=0.5) > ",
                           "gaussian(noise_multiplier=1) > ", "local-dp(noise_multiplier=1) > ", "central-dp(noise_multiplier=1) > ",
                           "quantize(q=10) > ", "rotation > discretize > skellam(noise_multiplier=1) > "])
_inner = st.sampled_from(["plain", "robust(rule=multi_krum)", "robust(rule=trimmed_mean, f=1)", "robust(rule=krum, pre=nnm)", "secagg+",
                          "secagg(bits=24)", "secagg+(bits=12)", "two-server", "two-server(rule=coordinate_median, bits=16)"])


@settings(max_examples=60, deadline=None)
@given(_outer, _middle, _inner, st.integers(3, 24), st.integers(3, 7), st.integers(0, 2**16))
def test_any_composition_builds_and_runs_a_round_or_is_refused_with_a_stack_error(outer, middle, inner, d, n, seed):
    """A stack that builds runs a round without dropouts (no ValueError at the round that the build should have
    caught); one that does not build says where, with a StackError."""
    text = outer + middle + inner
    try:
        protocol = build(parse(text), StackContext(dim=d, participants=n, f=(n - 1) // 2))
    except StackError as exc:
        assert exc.position is not None and exc.layer in text
        return
    x = np.random.default_rng(seed).normal(0, 0.5, (n, d)).astype(np.float32)
    out = secure_sum(x, protocol=protocol, seed=seed)
    assert out.result.shape == (d,) and np.all(np.isfinite(out.result))


def test_toml_tables_are_checked_too():
    specs = from_tables([{"layer": "clip", "bound": 1.0}, {"layer": "randk", "fraction": 0.25}, {"layer": "secagg+"}])
    assert format_specs(specs) == "clip(bound=1.0) > randk(fraction=0.25) > secagg+"
    for tables, where in (([{"bound": 1.0}], "position 1"), ([{"layer": "clip", "bound": [1]}], "field 'bound'"), ([], "non-empty")):
        with pytest.raises(StackError, match=where):
            from_tables(tables)


_names = st.sampled_from(sorted(REGISTRY))
_values = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                    st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=8))
_specs = st.lists(st.builds(lambda name, fields: LayerSpec(name, tuple(fields.items())), _names,
                            st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), _values, max_size=3)), min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(_specs)
def test_format_and_parse_round_trip(specs):
    assert parse(format_specs(specs)) == tuple(specs)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list("clip(bound=1)>,\"\\ x=+-secagg.0e")), max_size=40))
def test_any_text_parses_or_is_refused_with_a_stack_error(text):
    try:
        specs = parse(text)
    except StackError:
        return
    try:
        check(specs)
    except StackError:
        pass


def test_traits_say_who_sees_what():
    assert traits(parse("clip(bound=1) > local-dp(noise_multiplier=1) > robust")).observers == {"server": "own share", "released model": "own share"}
    t = traits(parse("clip(bound=1) > skellam(noise_multiplier=1) > two-server(f=2)"))
    assert t.shares and t.robust and t.robust_f == 2 and t.clips and t.splits and t.output == "sum"  # S1 and the dealer remote: protocols.two_server.remote
    assert traits(parse("clip(bound=1) > discretize > secagg+(active=true)")).splits  # signed with long-term identities (protocols.core.pki)
    assert traits(parse("clip(bound=1) > discretize > secagg+")).all_stages
