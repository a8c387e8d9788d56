"""result.json says where it came from (versions, commit, command line, times, machine, seeds) and
starts with a summary that agrees with its rounds."""

import json
import subprocess
from datetime import datetime
from importlib import metadata
from pathlib import Path

import pytest

from fl.cli import main
from fl.provenance import git_commit, versions

ROOT = Path(__file__).resolve().parents[2]


def test_result_json_carries_the_provenance_and_a_summary_that_matches_the_rounds(tmp_path):
    out = tmp_path / "r"
    args = ["run", "--set", "data=breast_cancer", "--set", "model=logreg", "--set", "clients=6", "--set", "rounds=2", "--set", "stack=robust",
            "--set", "rule=trimmed_mean", "--set", "f=2", "--set", "model_seed=7", "--set", "dropout=0", "--set", "sample_fraction=1", "--out", str(out)]
    assert main(args) == 0
    data = json.loads((out / "result.json").read_text())
    prov = data["provenance"]
    assert prov["command"] == ["secagg", *args]
    assert datetime.fromisoformat(prov["started"]) <= datetime.fromisoformat(prov["ended"]) and prov["seconds"] >= 0
    for name in ("numpy", "torch", "tenseal", "cryptography", "dp-accounting"):
        assert prov["packages"][name] == metadata.version(name)
    assert "flwr" not in prov["packages"]  # only when a Flower engine ran
    assert prov["machine"]["cpu_count"] >= 1 and prov["machine"]["platform"]
    assert prov["seeds"] == {"data": 0, "model": 7, "protocol": 0}
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert prov["git"]["commit"] == head.stdout.strip() and isinstance(prov["git"]["dirty"], bool)
    top = data["summary"]
    last = data["rounds"][-1]
    assert top["final_accuracy"] == last["accuracy"] and top["epsilon"] == last["cumulative_epsilon"] is None
    assert top["f"] == 2 == next(r["guarantee"]["parameters"]["f"] for r in last["reports"] if "f" in r["guarantee"]["parameters"])
    server = sum(r["cost"]["server_seconds"] for rnd in data["rounds"] for r in rnd["reports"]) / 2
    assert top["seconds_per_round"]["server"] == pytest.approx(server) and top["rounds_completed"] == 2


def test_versions_and_git_degrade_to_none(tmp_path):
    assert versions(("numpy", "no-such-distribution-xyz")) == {"numpy": metadata.version("numpy"), "no-such-distribution-xyz": None}
    assert git_commit(tmp_path) is None  # not a git work tree (or an installed copy)


def test_flwr_is_recorded_when_a_flower_engine_ran():
    from datetime import timezone

    from fl.provenance import provenance

    now = datetime.now(timezone.utc)
    block = provenance(command=["secagg"], started=now, ended=now, seeds={"data": 1, "model": 2, "protocol": 3}, engine="flower-sim")
    assert "flwr" in block["packages"] and block["seconds"] == 0 and block["seeds"] == {"data": 1, "model": 2, "protocol": 3}
