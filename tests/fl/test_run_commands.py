"""`secagg run`, `compare` and `report` on tiny configurations."""

import pytest

from fl.cli import main
from fl.config import config_from, load_toml
from fl.results import layer_reports, load_saved
from protocols.accounting import compose_epsilon

TINY = ["--set", "data=breast_cancer", "--set", "model=logreg", "--set", "clients=8", "--set", "rounds=3", "--set", "lr=0.1", "--set", "epochs=1"]


def test_run_writes_json_report_and_plots_with_the_accountants_epsilon(tmp_path, capsys):
    assert main(["run", *TINY, "--out", str(tmp_path / "run")]) == 0
    data = load_saved(tmp_path / "run")
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"result.json", "report.md", "accuracy.png", "epsilon.png", "cost.png"}
    mechanisms = [next(r.guarantee.dp_mechanism for r in layer_reports(rnd) if r.guarantee.dp_mechanism) for rnd in data["rounds"]]
    assert data["config"]["sample_fraction"] < 1 and data["config"]["participation"] == "fixed"
    expected = compose_epsilon(mechanisms, delta=data["config"]["delta"])  # fixed-size sampling: amplified against nobody
    by_observer = data["rounds"][-1]["epsilon_by_observer"]
    assert set(by_observer) == {"server", "released model"}
    assert data["rounds"][-1]["cumulative_epsilon"] == by_observer["released model"]["epsilon"] == pytest.approx(expected)
    assert by_observer["server"]["epsilon"] == pytest.approx(expected)
    assert "| secagg+ |" in capsys.readouterr().out


def test_report_re_renders_a_saved_run(tmp_path, capsys):
    main(["run", *TINY, "--set", "stack=plain", "--out", str(tmp_path / "r")])
    (tmp_path / "r" / "report.md").unlink()
    assert main(["report", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.md").read_text().startswith("# Experiment: plain on breast_cancer")
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_compare_prints_one_row_a_stack(tmp_path, capsys):
    assert main(["compare", *TINY, "--stacks", "plain,robust", "--set", "rule=trimmed_mean", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| plain |" in out and "| robust/trimmed_mean |" in out and "f tolerated" in out
    assert (tmp_path / "compare.png").exists() and (tmp_path / "compare.md").read_text().startswith("| stack |")


def test_toml_config_and_errors_that_name_the_field(tmp_path, capsys):
    path = tmp_path / "exp.toml"
    path.write_text('stack = "robust"\nrule = "krum"\nrounds = 2\n[local]\nlr = 0.05\n')
    config = config_from(load_toml(path))
    assert config.stack == "robust" and config.local.lr == 0.05 and config.rounds == 2
    assert main(["run", "--set", "roundz=3"]) == 2
    assert "unknown field 'roundz'" in capsys.readouterr().err
    assert main(["run", "--set", "byzantine=0.7"]) == 2
    assert "byzantine" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("rounds = \n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "bad.toml" in capsys.readouterr().err


@pytest.fixture
def no_rounds(monkeypatch):
    """Fails the test if any experiment starts: configuration errors must come before the first round."""
    import fl.run_commands

    def refuse(*args, **kwargs):
        raise AssertionError("an experiment started before the configuration was refused")

    monkeypatch.setattr(fl.run_commands, "run_experiment", refuse)


@pytest.mark.parametrize("args, field, value", [
    (["--set", "batch_size=abc"], "batch_size", "'abc'"),
    (["--set", "bits=0"], "bits", "found 0"),
    (["--set", "delta=2"], "delta", "found 2.0"),
    (["--set", "noise_multiplier=0"], "noise_multiplier", "found 0.0"),  # the default stack is ddp+secagg+
    (["--set", "stack=ckks", "--set", "rule=krum"], "rule", "rule='krum'"),
    (["--set", "stack=plain", "--set", "f=2"], "f", "found f=2"),
    (["--set", "epochs=0"], "epochs", "found 0"),
    (["--set", "attack=bogus"], "attack", "'bogus'"),
    (["--set", "data=missing.csv"], "data", "'missing.csv'"),
    (["--set", "partition=natural"], "partition", "data='digits'"),
    (["--set", "seed=1.5"], "seed", "'1.5'"),
])
def test_errors_name_the_field_and_the_bad_value(args, field, value, capsys, no_rounds, tmp_path):
    assert main(["run", *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert field in err and value in err and "Traceback" not in err


def test_config_on_a_directory_and_report_on_a_non_result_are_errors_not_tracebacks(tmp_path, capsys, no_rounds):
    assert main(["run", "--config", str(tmp_path)]) == 2
    assert f"--config {tmp_path}: a directory" in capsys.readouterr().err
    (tmp_path / "result.json").write_text("{}")
    assert main(["report", str(tmp_path)]) == 2
    assert "'config'" in capsys.readouterr().err
    (tmp_path / "result.json").write_text("[1, 2")
    assert main(["report", str(tmp_path)]) == 2
    assert "not JSON" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "compare", "flower-app"])
def test_help_lists_every_field_with_its_default(command, capsys):
    from fl.config import LOCAL_KEYS, TOP_KEYS
    from fl.run_commands import DEFAULT_RUN

    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    for key in (*TOP_KEYS, *LOCAL_KEYS):
        assert f"  {key}=" in out
    for key, value in DEFAULT_RUN.items():
        assert f"  {key}={value} " in out


def test_compare_validates_every_stack_before_running_any(tmp_path, capsys, no_rounds):
    assert main(["compare", *TINY, "--stacks", "plain,nope", "--out", str(tmp_path / "c")]) == 2
    assert "unknown stack 'nope'" in capsys.readouterr().err
    assert main(["compare", *TINY, "--stacks", "plain,ddp+secagg+", "--set", "noise_multiplier=0", "--out", str(tmp_path / "c")]) == 2
    assert "stack 'ddp+secagg+'" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_compare_table_is_right_when_the_last_round_aborted():
    from fl.experiment import ExperimentConfig, RoundRecord, run_experiment
    from fl.run_commands import compare_table

    result = run_experiment(ExperimentConfig(stack="ddp+two-server", rule="multi_krum", clients=6, rounds=2, byzantine=0.2, noise_multiplier=0.5))
    last = result.rounds[-1]
    result.rounds.append(RoundRecord(round=3, loss=last.loss, accuracy=last.accuracy, included=(), byzantine=(), reports=(), epsilon=None,
                                     cumulative_epsilon=last.cumulative_epsilon, aborted="too few survivors"))
    row = compare_table([result]).splitlines()[-1].split("|")[1:-1]
    f = next(r.guarantee.parameters["f"] for r in last.reports if "f" in r.guarantee.parameters)
    completed = result.rounds[:2]
    up = sum(r.cost.bytes_up_mean for rec in completed for r in rec.reports) / 2
    between = sum(sum(r.cost.bytes_between.values()) for rec in completed for r in rec.reports) / 2
    other = sum(sum(r.cost.party_seconds.values()) for rec in completed for r in rec.reports) / 2
    assert f >= 1 and between > 0
    assert [c.strip() for c in row[:5]] == ["ddp+two-server/multi_krum", f"{last.accuracy:.4f}", f"{last.cumulative_epsilon:.3g}", str(f), "2/3"]
    assert row[7].strip() == f"{other:.4f}" and row[8].strip() == f"{up:,.0f}" and row[9].strip() == f"{between:,.0f}"


def test_cost_has_one_bar_a_party_and_link_for_a_named_round_or_the_mean(tmp_path, capsys):
    from fl.results import mean_costs

    out = tmp_path / "two"
    assert main(["run", *TINY, "--set", "rounds=2", "--set", "stack=ddp+two-server", "--set", "rule=multi_krum", "--set", "byzantine=0.2",
                 "--set", "clients=6", "--set", "sample_fraction=1", "--set", "dropout=0", "--out", str(out)]) == 0
    data = load_saved(out)
    seconds, sizes, label = mean_costs(data["rounds"])
    parties = {p for rnd in data["rounds"] for r in rnd["reports"] for p in r["cost"]["party_seconds"]}
    links = {p for rnd in data["rounds"] for r in rnd["reports"] for p in r["cost"]["bytes_between"]}
    assert {"second server", "dealer"} <= parties and set(seconds) == {"clients", "server", *parties}
    assert set(sizes) == {"up a client", "down a client", *links} and label == "mean of 2 completed rounds"
    one, _, label1 = mean_costs(data["rounds"], 1)
    two, _, _ = mean_costs(data["rounds"], 2)
    assert label1 == "round 1" and seconds["server"] == pytest.approx({k: (one["server"][k] + two["server"][k]) / 2 for k in one["server"]})
    capsys.readouterr()
    assert main(["report", str(out), "--round", "2"]) == 0 and (out / "cost.png").exists()
    assert main(["report", str(out), "--round", "9"]) == 2
    assert "--round 9" in capsys.readouterr().err
