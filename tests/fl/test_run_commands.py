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
