"""The experiment's stack is data (fl.stacks): the nine presets build what the former if-chain built, a
layer list runs from TOML [[stack]] tables and from --stack, and result.json records it as given and as built."""

import dataclasses
import json
import math

import numpy as np
import pytest

from fl.cli import main
from fl.config import config_from, load_toml
from fl.experiment import STACKS, ExperimentConfig, build_stack, robust_f, run_experiment
from fl.privacy import OBSERVERS, SUM_STACKS
from fl.stacks import PRESETS, label, preset_traits
from protocols import SecAggPlus
from protocols.core.stack import StackError, describe
from protocols.he.aggregation import CKKSAggregation
from protocols.he.hidden_state import HiddenStateCKKS
from protocols.he.robust import CKKSRobust
from protocols.layers import DiscreteEncode, L2Clip, central_dp, distributed_dp, distributed_dp_parameters, local_dp, rounded_l2_bound
from protocols.layers.gaussian_shares import GaussianShares
from protocols.robust import PlainRobust
from protocols.two_server import TwoServerRobust

ISSUE_TOML = """data = "breast_cancer"
model = "logreg"
clients = 10
rounds = 2
byzantine = 0.2
attack = "sign_flipping"
[[stack]]
layer = "clip"
bound = 1.0
[[stack]]
layer = "randk"
fraction = 0.25
[[stack]]
layer = "skellam"
noise_multiplier = 1.0
[[stack]]
layer = "two-server"
rule = "multi_krum"
f = 2
pre = "nnm"
"""


def reference_stack(config: ExperimentConfig, dim: int, initial: np.ndarray, m: int):
    """The if-chain `build_stack` was before stacks were data, kept as the independent reference."""
    expected = max(1, math.floor(config.participants * (1 - config.dropout)))
    uncounted = lambda corrupt=0.0: min(m, min(m, config.byzantine_clients) + math.ceil(corrupt * m))
    f = robust_f(config)
    if config.stack == "plain":
        return PlainRobust(rule="mean", f=0)
    if config.stack in ("robust", "central-dp", "local-dp"):
        rule = PlainRobust(rule=config.rule, f=f)
        if config.stack == "central-dp":
            return central_dp(rule, clip=config.clip, noise_multiplier=config.noise_multiplier, delta=config.delta)
        return local_dp(rule, clip=config.clip, noise_multiplier=config.noise_multiplier, delta=config.delta) if config.stack == "local-dp" else rule
    if config.stack == "secagg+":
        protection = SecAggPlus.for_clients_or_complete(m, bits=32, dropout=max(config.dropout, 0.01))
        return L2Clip(config.clip, DiscreteEncode(2.0**30 / (m * (config.clip + math.sqrt(dim))), config.clip, protection, beta=0.0))
    if config.stack == "ckks":
        return L2Clip(config.clip, CKKSAggregation(min_clients=2))  # the presets ask sums of >= 2 inputs (review 6)
    if config.stack == "ckks-robust":
        # min_clients 1 only for krum (which releases one input): multi_krum's 1 let a release list the victim alone (review 14)
        return L2Clip(config.clip, CKKSRobust(rule=config.rule, f=f, norm_bound=config.clip, min_clients=1 if config.rule == "krum" else 2))
    if config.stack == "hidden-state":
        inner = HiddenStateCKKS(initial=np.asarray(initial, dtype=np.float64), weight=1.0 / m, min_clients=2)
        if config.noise_multiplier > 0:
            inner = GaussianShares(config.noise_multiplier, config.clip, expected, inner, delta=config.delta, assume_colluding=uncounted())
        return L2Clip(config.clip, inner)
    if config.stack == "two-server":
        bits = min(32, (63 - max(1, dim - 1).bit_length()) // 2)
        scale = (2.0 ** (bits - 2) / m - math.sqrt(dim)) / config.clip
        protection = TwoServerRobust(rule=config.rule, f=f, bits=bits, tau=config.clip * scale, norm_bound=rounded_l2_bound(config.clip * scale, dim, 0.0))
        return L2Clip(config.clip, DiscreteEncode(scale, config.clip, protection, beta=0.0))
    protocol = TwoServerRobust(rule=config.rule, f=f, bits=config.bits) if config.stack == "ddp+two-server" else \
        SecAggPlus.for_clients_or_complete(m, bits=config.bits, dropout=max(config.dropout, 0.01))
    corrupt = protocol.targets.get("corrupt", 0.05) if isinstance(protocol, SecAggPlus) else 0.0
    stack = distributed_dp(protocol, clients=m, dim=dim, clip=config.clip, noise_multiplier=config.noise_multiplier, mechanism=config.mechanism,
                           expected_clients=expected, delta=config.delta, assume_colluding=uncounted(corrupt))
    if isinstance(protocol, TwoServerRobust):
        protocol.tau = config.clip * distributed_dp_parameters(bits=config.bits, clients=m, dim=dim, clip=config.clip,
                                                               noise_multiplier=config.noise_multiplier, expected_clients=expected,
                                                               mechanism=config.mechanism).scale
    return stack


def _chain(protocol) -> list[dict]:
    out = []
    while protocol is not None:
        out.append({k: v for k, v in describe(protocol).items() if k != "initial"})
        protocol = getattr(protocol, "inner", None)
    return out


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("fields", [{}, {"clients": 12, "dropout": 0.2, "byzantine": 0.2, "clip": 0.5},
                                    {"clients": 30, "sample_fraction": 0.5, "mechanism": "ddg", "bits": 24, "noise_multiplier": 1.5, "f": 3}])
def test_each_preset_builds_what_the_if_chain_built(stack, fields):
    rule = "multi_krum" if stack in ("two-server", "ddp+two-server", "ckks-robust") else "trimmed_mean"
    config = ExperimentConfig(stack=stack, rule=rule, **fields)
    for dim, m in ((62, config.participants), (130, config.participants - 1)):
        initial = np.zeros(dim)
        assert _chain(build_stack(config, dim, initial, participants=m)) == _chain(reference_stack(config, dim, initial, m))


def test_preset_observers_are_the_table_the_privacy_accounting_was_written_for():
    assert OBSERVERS == {
        "plain": {"server": "clear", "released model": "released"},
        "robust": {"server": "clear", "released model": "released"},
        "central-dp": {"server": "clear", "released model": "released"},
        "local-dp": {"server": "own share", "released model": "own share"},
        "secagg+": {"server": "aggregate", "released model": "released"},
        "ddp+secagg+": {"server": "aggregate", "released model": "released"},
        # the key holder recomputes from every client's own ciphertext, so it could decrypt each (review 14): own share
        "ckks": {"server": "aggregate", "key holder": "own share", "released model": "released"},
        "ckks-robust": {"server": "own share", "key holder": "own share", "released model": "own share"},
        "two-server": {"server": "own share", "second server": "own share", "released model": "own share"},
        "ddp+two-server": {"server": "own share", "second server": "own share", "released model": "own share"},
        "hidden-state": {"server": "final model", "key holder": "own share", "clients": "aggregate", "released model": "final model"},
    }
    assert SUM_STACKS == ("secagg+", "ddp+secagg+", "ckks")
    assert [s for s in STACKS if preset_traits(s).output == "mean"] == ["plain", "robust", "central-dp", "local-dp"]
    assert [s for s in STACKS if preset_traits(s).splits] == ["plain", "secagg+", "ddp+secagg+", "robust", "central-dp", "local-dp", "ckks", "ckks-robust",
                                                                 "two-server", "ddp+two-server", "hidden-state"]


def test_a_layer_list_equal_to_a_preset_trains_exactly_as_the_preset():
    common = {"clients": 5, "rounds": 2, "dropout": 0.2, "noise_multiplier": 1.0, "seed": 3}
    preset = run_experiment(ExperimentConfig(stack="ddp+secagg+", **common))
    spelled = run_experiment(ExperimentConfig(stack="clip(bound=1) > skellam(noise_multiplier=1) > secagg+(bits=20)", **common))
    assert [r.loss for r in spelled.rounds] == [r.loss for r in preset.rounds]
    assert [r.cumulative_epsilon for r in spelled.rounds] == [r.cumulative_epsilon for r in preset.rounds]


def test_the_issue_toml_runs_in_process_through_the_cli(tmp_path, capsys):
    path = tmp_path / "issue.toml"
    path.write_text(ISSUE_TOML)
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "result.json").read_text())
    assert data["config"]["stack"] == "clip(bound=1.0) > randk(fraction=0.25) > skellam(noise_multiplier=1.0) > two-server(rule=multi_krum, f=2, pre=nnm)"
    assert [s["layer"] for s in data["stack"]["given"]] == ["clip", "randk", "skellam", "two-server"]
    assert data["provenance"]["stack"] == data["stack"]["given"]
    built = {layer["given"]["layer"]: layer["built"] for layer in data["stack"]["built"]}
    assert [b["class"] for b in built["skellam"]] == ["RandomizedHadamard", "DiscreteEncode", "DistributedNoise"]
    two = built["two-server"][0]
    assert (two["f"], two["pre"], two["rule"]) == (2, "nnm", "multi_krum")
    assert two["tau"] == pytest.approx(1.0 * built["skellam"][1]["scale"])  # the clip radius in ring units
    assert built["randk"][0]["k"] == round(0.25 * 62)
    assert len(data["rounds"]) == 2
    assert "two-server" in {rep["layer"] for r in data["rounds"] if not r["aborted"] for rep in r["reports"]}


def test_stack_flag_and_set_stack_and_presets(tmp_path):
    flags = ["--set", "data=breast_cancer", "--set", "model=logreg", "--set", "clients=5", "--set", "rounds=1", "--set", "sample_fraction=1"]
    assert main(["run", *flags, "--stack", "topk(fraction=0.5) > clip(bound=1) > discretize > secagg+", "--out", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "result.json").read_text())["stack"]["built"][0]["built"][0]["k"] == 31
    assert main(["run", *flags, "--set", "stack=robust", "--set", "rule=coordinate_median", "--out", str(tmp_path / "b")]) == 0
    given = json.loads((tmp_path / "b" / "result.json").read_text())["stack"]["given"]
    assert given == [{"layer": "robust", "rule": "coordinate_median"}]
    assert label("topk(fraction=0.5) > clip(bound=1) > discretize > secagg+") == "topk-clip-discretize-secagg+"


@pytest.mark.parametrize("stack, where", [
    ("clip(bound=1) > nope > secagg+", "stack must be one of the presets"),
    ("clip(bound=0) > discretize > secagg+", "position 1 layer 'clip' field 'bound'"),
    ("clip(bound=1) > skellam(noise_multiplier=0) > secagg+", "position 2 layer 'skellam' field 'noise_multiplier'"),
    ("robust > clip(bound=1)", "position 1 layer 'robust'"),
])
def test_a_bad_stack_is_refused_when_the_config_is_made(stack, where):
    with pytest.raises(StackError, match=where):
        ExperimentConfig(stack=stack)
    assert main(["run", "--stack", stack, "--set", "rounds=1"]) == 2


def test_bad_stack_tables_name_the_file_and_the_position(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[stack]]\nlayer = "clip"\nbound = 1.0\n[[stack]]\nbound = 2\n')
    with pytest.raises(ValueError, match=r"bad.toml: \[\[stack\]\]: position 2"):
        load_toml(path)
    path.write_text('[[stack]]\nlayer = "clip"\nbound = "big"\n[[stack]]\nlayer = "plain"\n')
    with pytest.raises(ValueError, match="position 1 layer 'clip' field 'bound'"):
        config_from(load_toml(path))


def test_the_adaptive_clips_count_is_composed_into_every_epsilon():
    """The noisy count is a query of its own: every observer's epsilon is larger than the same stack's without it."""
    inner = "clip(bound=1) > skellam(noise_multiplier=1) > secagg+(bits=20)"
    result = run_experiment(ExperimentConfig(stack=f"adaptive-clip(norm=0.5, count_noise_multiplier=1) > {inner}", clients=5, rounds=1))
    alone = run_experiment(ExperimentConfig(stack=inner, clients=5, rounds=1)).epsilon_by_observer
    by = result.epsilon_by_observer
    assert set(by) == {"server", "released model"} and all(math.isfinite(o.epsilon) for o in by.values())
    assert all(by[o].epsilon > alone[o].epsilon for o in by)
    count = next(r for r in result.rounds[-1].reports if r.layer == "adaptive-clip").guarantee
    assert count.dp_mechanism is not None and math.isfinite(count.epsilon)


def test_traits_replace_the_name_switches():
    hidden = ExperimentConfig(stack="clip(bound=1) > gaussian(noise_multiplier=1) > hidden-state", model="logreg", clients=5)
    assert hidden.traits.output == "model" and hidden.traits.needs_initial
    with pytest.raises(ValueError, match="server_lr must be 1"):
        dataclasses.replace(hidden, server_lr=0.5)
    with pytest.raises(ValueError, match="no client-side clip layer"):
        ExperimentConfig(stack="robust(rule=krum)", byzantine=0.2, byzantine_protocol="skip-clip")
    with pytest.raises(ValueError, match="sends no additive shares"):
        ExperimentConfig(stack="clip(bound=1) > discretize > secagg+", byzantine=0.2, byzantine_protocol="shares-wrapped")
    assert dataclasses.replace(hidden, engine="flower-sim", sample_fraction=1.0).traits.splits  # hidden state splits now (flower-he)
    with pytest.raises(ValueError, match="sample_fraction must be 1"):  # from its output trait, not its name
        dataclasses.replace(hidden, engine="flower-sim", sample_fraction=0.5)
    assert ExperimentConfig(stack="clip(bound=1) > skellam(noise_multiplier=1) > two-server(f=2)", clients=10, byzantine=0.2).traits.robust_f == 2
    assert set(PRESETS) == set(STACKS)


TEXT = "clip(bound=1) > randk(fraction=0.5) > skellam(noise_multiplier=0.5) > secagg+(bits=24)"


def test_a_layer_list_reaches_the_deployment_as_a_string_in_the_run_config(tmp_path):
    pytest.importorskip("flwr", reason="the Flower engine is the optional extra '.[flower]'")
    import tomllib

    from fl.flower_engine import config_from_run, write_app

    common = {"clients": 5, "rounds": 2, "stack": TEXT, "dropout": 0.2, "seed": 0}
    app = write_app(tmp_path / "app", common, tmp_path / "out")
    run_config = tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert run_config["stack"] == TEXT
    assert config_from_run(run_config).specs == ExperimentConfig(**common).specs


@pytest.mark.slow  # two rounds on the session's Ray actors (tests/fl/conftest.py `flower_sim`); a fresh Ray start adds 15-20 s
@pytest.mark.usefixtures("flower_sim")
def test_a_layer_list_on_the_simulation_engine_gives_the_in_process_rounds():
    pytest.importorskip("flwr", reason="the Flower engine is the optional extra '.[flower]'")
    from fl.run_commands import run_on_engine

    common = {"clients": 5, "rounds": 2, "stack": TEXT, "dropout": 0.2, "seed": 0}
    here = run_experiment(ExperimentConfig(**common))
    there = run_on_engine(ExperimentConfig(engine="flower-sim", **common))  # its nodes build the stack from the spec string
    assert [r.included for r in there.rounds] == [r.included for r in here.rounds]
    assert [r.loss for r in there.rounds] == pytest.approx([r.loss for r in here.rounds], rel=1e-6)
    assert [r.cumulative_epsilon for r in there.rounds] == [r.cumulative_epsilon for r in here.rounds]


def test_compare_takes_layer_lists_separated_by_semicolons(capsys):
    from fl.run_commands import compare_configs

    configs = compare_configs({"rule": "krum"}, ["clip(bound=1) > discretize > secagg+", "robust(rule=multi_krum, f=1)", "robust"])
    assert [c.stack for c in configs] == ["clip(bound=1) > discretize > secagg+", "robust(rule=multi_krum, f=1)", "robust"]
    assert configs[1].specs[0].values == {"rule": "multi_krum", "f": 1} and configs[2].rule == "krum"
    assert main(["compare", "--stacks", "clip(bound=1) > discretize > secagg+; clip(bound=0) > plain", "--set", "rounds=1"]) == 2
    assert "position 1 layer 'clip' field 'bound'" in capsys.readouterr().err


def test_secagg_layers_lists_every_registered_layer_and_its_fields(capsys):
    from protocols.core.stack import REGISTRY

    assert main(["layers"]) == 0
    out = capsys.readouterr().out
    for name, entry in REGISTRY.items():
        assert f"\n{name}" in f"\n{out}" and all(f"{field}=" in out for field in entry.fields)
    assert "bound=(required)" in out and "rule=multi_krum {krum|multi_krum" in out
