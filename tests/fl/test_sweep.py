"""`secagg sweep` on tiny grids: the table agrees with its runs, statistics are right, finished runs are
skipped on resume, a different sweep or a bad cell is refused before anything runs, Ctrl-C keeps what finished."""

import csv
import json
import math
import statistics

import pytest

import fl.sweep
from fl.cli import main
from fl.results import load_saved
from fl.sweep import SweepSpec, parse_grid, sweep

BASE = {"data": "breast_cancer", "model": "logreg", "clients": 5, "rounds": 1, "sample_fraction": 1.0, "dropout": 0.0, "stack": "plain",
        "attack": "sign_flipping", "lr": 0.1, "epochs": 1}


def _spec(**grid):
    return SweepSpec(base=dict(BASE), grid=grid or {"byzantine": ["0", "0.2"]}, seeds=2)


def test_sweep_table_statistics_and_resume(tmp_path, monkeypatch):
    data, interrupted = sweep(_spec(), tmp_path / "s", workers=1)
    assert not interrupted and data["complete"] and {p.name for p in (tmp_path / "s").iterdir()} >= {"sweep.json", "sweep.csv", "trilemma.png", "runs"}
    rows = list(csv.DictReader((tmp_path / "s" / "sweep.csv").open()))
    assert [r["row"] for r in rows] == ["run", "run", "cell"] * 2
    for cell in (rows[:3], rows[3:]):
        accs = [load_saved(tmp_path / "s" / r["folder"])["rounds"][-1]["accuracy"] for r in cell[:2]]
        assert [float(r["final_accuracy"]) for r in cell[:2]] == accs and [r["seed"] for r in cell[:2]] == ["0", "1"]
        assert float(cell[2]["final_accuracy"]) == pytest.approx(statistics.mean(accs))
        std = statistics.stdev(accs)
        half = math.tan(math.pi * 0.475) * std / math.sqrt(2)  # Student t, 1 degree of freedom: t_0.975 = tan(0.475 pi)
        assert float(cell[2]["final_accuracy_std"]) == pytest.approx(std)
        assert float(cell[2]["final_accuracy_ci95_high"]) == pytest.approx(statistics.mean(accs) + half)
    assert [r["attackers_per_round"] for r in rows if r["row"] == "run"] == ["0", "0", "1", "1"]
    calls = []
    monkeypatch.setattr(fl.sweep, "_run_one", lambda job: calls.append(job) or pytest.fail("a finished run ran again"))
    again, _ = sweep(_spec(), tmp_path / "s", workers=1)
    assert calls == [] and again["cells"] == data["cells"]
    monkeypatch.undo()
    target = tmp_path / "s" / "runs" / "byzantine=0.2,seed=1"
    (target / "result.json").unlink()
    seen = []
    real = fl.sweep._run_one
    monkeypatch.setattr(fl.sweep, "_run_one", lambda job: seen.append(job[1]) or real(job))
    sweep(_spec(), tmp_path / "s", workers=1)
    assert seen == [str(target)]


def test_a_different_sweep_a_foreign_folder_and_a_bad_cell_are_refused_before_any_run(tmp_path, monkeypatch):
    monkeypatch.setattr(fl.sweep, "_run_one", lambda job: pytest.fail("a run started"))
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "sweep.json").write_text(json.dumps({"spec": {"base": {}, "grid": {"clip": ["1"]}, "seeds": 1}, "cells": []}))
    with pytest.raises(ValueError, match="holds a different sweep"):
        sweep(_spec(), tmp_path / "s", workers=1)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "result.json").write_text("{}")
    with pytest.raises(ValueError, match="not a sweep folder"):
        sweep(_spec(), tmp_path / "other", workers=1)
    with pytest.raises(ValueError, match=r"sweep cell noise_multiplier=abc,seed=0: field 'noise_multiplier'"):
        sweep(_spec(noise_multiplier=["abc"]), tmp_path / "new", workers=1)
    with pytest.raises(ValueError, match="--seeds"):
        SweepSpec(base={}, grid={"byzantine": ["0"]}, seeds=0)
    with pytest.raises(ValueError, match="seeds are swept by --seeds"):
        SweepSpec(base={}, grid={"seed": ["1", "2"]}, seeds=1)
    with pytest.raises(ValueError, match="FIELD=V1,V2"):
        parse_grid(["byzantine"])
    assert parse_grid(["noise_multiplier=0.5, 1", "byzantine=0"]) == {"noise_multiplier": ["0.5", "1"], "byzantine": ["0"]}


def test_ctrl_c_keeps_the_finished_runs_and_exits_130(tmp_path, monkeypatch, capsys):
    real, done = fl.sweep._run_one, []

    def stop_on_the_second(job):
        if done:
            raise KeyboardInterrupt
        done.append(job)
        return real(job)

    monkeypatch.setattr(fl.sweep, "_run_one", stop_on_the_second)
    args = ["sweep", *(a for k, v in BASE.items() for a in ("--set", f"{k}={v}")), "--grid", "byzantine=0,0.2", "--seeds", "1", "--workers", "1",
            "--out", str(tmp_path / "s")]
    assert main(args) == 130
    data = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert not data["complete"] and [len(c["runs"]) for c in data["cells"]] == [1, 0]
    monkeypatch.undo()
    capsys.readouterr()
    assert main(args) == 0  # resumes: only the missing run
    assert main(["report", str(tmp_path / "s")]) == 0
    assert "| byzantine | seeds |" in capsys.readouterr().out and (tmp_path / "s" / "sweep.md").exists()


@pytest.mark.slow  # two spawned worker processes: about 15-30 s on a loaded 2-core machine
def test_a_2x2_grid_with_2_seeds_runs_in_worker_processes(tmp_path, capsys):
    args = ["sweep", *(a for k, v in BASE.items() for a in ("--set", f"{k}={v}")), "--set", "stack=ddp+secagg+", "--grid", "noise_multiplier=0.5,1",
            "--grid", "byzantine=0,0.2", "--seeds", "2", "--workers", "2", "--out", str(tmp_path / "s")]
    assert main(args) == 0
    data = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert data["complete"] and len(list((tmp_path / "s" / "runs").iterdir())) == 8
    eps = {c["fields"]["noise_multiplier"]: c["metrics"]["epsilon"]["mean"] for c in data["cells"]}
    assert eps["0.5"] > eps["1"] > 0  # more noise, smaller epsilon
    assert (tmp_path / "s" / "accuracy_epsilon.png").exists() and (tmp_path / "s" / "trilemma.png").exists()


def test_a_sweep_table_in_the_toml_file_and_the_cost_against_n_plot(tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in BASE.items()) + "\n[sweep]\nclients = [4, 6]\nseeds = 1\n")
    assert main(["sweep", "--config", str(path), "--workers", "1", "--out", str(tmp_path / "s")]) == 0
    data = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert data["spec"]["grid"] == {"clients": [4, 6]} and data["spec"]["seeds"] == 1
    assert [load_saved(tmp_path / "s" / c["runs"][0]["folder"])["config"]["clients"] for c in data["cells"]] == [4, 6]
    assert (tmp_path / "s" / "cost_clients.png").exists() and not (tmp_path / "s" / "accuracy_epsilon.png").exists()  # plain: no epsilon
    path.write_text(path.read_text().replace("clients = [4, 6]", "clients = 4"))
    assert main(["sweep", "--config", str(path), "--workers", "1", "--out", str(tmp_path / "t")]) == 2
    assert "--grid clients: expected a non-empty list" in capsys.readouterr().err


def test_stacks_with_and_without_a_rule_share_one_sweep(tmp_path):
    spec = SweepSpec(base={**BASE, "rule": "trimmed_mean", "byzantine": 0.2}, grid={"stack": ["plain", "robust"]}, seeds=1)
    data, _ = sweep(spec, tmp_path / "s", workers=1)
    configs = [load_saved(tmp_path / "s" / c["runs"][0]["folder"])["config"] for c in data["cells"]]
    assert [(c["stack"], c["rule"]) for c in configs] == [("plain", "krum"), ("robust", "trimmed_mean")]  # plain: the rule is not its
