"""Nothing lost: a run never overwrites an earlier result unless asked, and an interrupted or failed run
never destroys one. The adversary is the user's own mistake (same --out twice, Ctrl-C, a crash)."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import fl.run_commands
from fl.cli import main
from fl.output_folder import OutputExists, OutputFolder

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--set", "data=breast_cancer", "--set", "model=logreg", "--set", "clients=5", "--set", "rounds=1", "--set", "stack=plain",
        "--set", "sample_fraction=1", "--set", "dropout=0"]


def _no_rounds(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a round ran before --out was checked")

    monkeypatch.setattr(fl.run_commands, "run_experiment", refuse)


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith("." + folder.name))


def test_a_second_run_into_the_same_out_keeps_the_first(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["run", *TINY, "--out", str(out)]) == 0
    first = (out / "result.json").read_text()
    capsys.readouterr()
    _no_rounds(monkeypatch)
    assert main(["run", *TINY, "--set", "seed=1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--force" in err
    assert (out / "result.json").read_text() == first and _siblings(out) == []


def test_force_replaces_only_once_the_new_run_completed(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["run", *TINY, "--out", str(out)]) == 0
    (out / "stale.txt").write_text("from the earlier run")
    first = (out / "result.json").read_text()

    def crash(*args, **kwargs):
        raise RuntimeError("the machine fell over")

    with monkeypatch.context() as m:
        m.setattr(fl.run_commands, "run_experiment", crash)
        with pytest.raises(RuntimeError):
            main(["run", *TINY, "--force", "--out", str(out)])
    assert (out / "result.json").read_text() == first and _siblings(out) == []  # the failed run left nothing
    assert main(["run", *TINY, "--set", "seed=4", "--force", "--out", str(out)]) == 0
    assert json.loads((out / "result.json").read_text())["config"]["seed"] == 4
    assert not (out / "stale.txt").exists() and _siblings(out) == []


def test_out_onto_a_file_is_refused_before_the_first_round(tmp_path, capsys, monkeypatch):
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    _no_rounds(monkeypatch)
    for extra in ([], ["--force"]):
        assert main(["run", *TINY, *extra, "--out", str(path)]) == 2
        assert f"--out {path}: is a file" in capsys.readouterr().err
        assert main(["compare", *TINY, *extra, "--stacks", "plain", "--out", str(path)]) == 2
    assert path.read_text() == "keep me"


def test_an_empty_folder_is_free_and_an_occupied_one_is_not(tmp_path):
    (tmp_path / "empty").mkdir()
    target = OutputFolder(tmp_path / "empty")
    (target.tmp / "a").write_text("1")
    assert target.commit() == tmp_path / "empty" and (tmp_path / "empty" / "a").read_text() == "1"
    with pytest.raises(OutputExists, match="already exists"):
        OutputFolder(tmp_path / "empty")
    beside = OutputFolder(tmp_path / "empty", force=True)
    assert beside.commit_beside("interrupted") == tmp_path / "empty-interrupted"
    assert OutputFolder(tmp_path / "empty", force=True).commit_beside("interrupted") == tmp_path / "empty-interrupted-2"
    assert (tmp_path / "empty" / "a").read_text() == "1"


def _interrupt(args: list[str]) -> tuple[int, str]:
    """Runs `secagg run ARGS` in a subprocess and sends it SIGINT (what `timeout -s INT` does) once two
    rounds are done; returns (exit status, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "fl.cli", "run", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen, ready = [], threading.Event()

    def read():
        while chunk := proc.stderr.read1(4096):
            seen.append(chunk.decode(errors="replace"))
            if "round 2/" in "".join(seen):
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert ready.wait(120), "no progress from the run"
    proc.send_signal(signal.SIGINT)
    status = proc.wait(120)
    reader.join(10)
    return status, "".join(seen)


def test_ctrl_c_in_process_saves_the_completed_rounds_into_a_free_out_and_exits_130(tmp_path, capsys, monkeypatch):
    def stop_after_two(total, label):
        def show(record):
            if record.round == 2:
                raise KeyboardInterrupt

        return show

    monkeypatch.setattr(fl.run_commands, "_progress", stop_after_two)
    out = tmp_path / "run"
    assert main(["run", *TINY, "--set", "rounds=5", "--out", str(out)]) == 130
    data = json.loads((out / "result.json").read_text())
    assert data["interrupted"] and [r["round"] for r in data["rounds"]] == [1, 2] and data["summary"]["rounds_completed"] == 2


@pytest.mark.slow  # a subprocess: about 20 s on a loaded 2-core machine
def test_sigint_exits_130_and_an_interrupted_run_never_replaces_an_earlier_result(tmp_path, capsys):
    out = tmp_path / "long"
    assert main(["run", *TINY, "--out", str(out)]) == 0
    earlier = (out / "result.json").read_text()
    status, err = _interrupt([*TINY, "--set", "rounds=100000", "--out", str(out), "--force"])  # even --force does not
    assert status == 130, err
    assert (out / "result.json").read_text() == earlier
    beside = json.loads((tmp_path / "long-interrupted" / "result.json").read_text())
    assert beside["interrupted"] and len(beside["rounds"]) >= 2 and _siblings(out) == []
    assert [r["round"] for r in beside["rounds"]] == list(range(1, len(beside["rounds"]) + 1))


def test_without_out_a_second_run_goes_to_a_numbered_sibling(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", *TINY]) == 0 and main(["run", *TINY]) == 0
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["plain-breast_cancer-seed0", "plain-breast_cancer-seed0-2"]


def test_ctrl_c_during_compare_keeps_the_finished_stacks_and_stops(tmp_path, capsys, monkeypatch):
    def stop_in_robust(total, label):
        def show(record):
            if label == "robust":
                raise KeyboardInterrupt

        return show

    monkeypatch.setattr(fl.run_commands, "_progress", stop_in_robust)
    out = tmp_path / "c"
    assert main(["compare", *TINY, "--set", "rounds=2", "--stacks", "plain,robust,secagg+", "--out", str(out)]) == 130
    assert sorted(p.name for p in out.iterdir()) == ["compare.md", "compare.png", "plain", "robust"]
    assert json.loads((out / "robust" / "result.json").read_text())["interrupted"]
    assert "| robust/krum |" in (out / "compare.md").read_text()


def test_a_failed_final_move_puts_the_earlier_result_back(tmp_path, monkeypatch):
    import fl.output_folder

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "result.json").write_text("earlier")
    target = OutputFolder(tmp_path / "r", force=True)
    real = os.rename

    def fail_on_the_new_one(src, dst):
        if Path(src) == target.tmp:
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(fl.output_folder.os, "rename", fail_on_the_new_one)
    with pytest.raises(OSError, match="disk full"):
        target.commit()
    assert (tmp_path / "r" / "result.json").read_text() == "earlier" and not list(tmp_path.glob(".r.*.old"))
