"""Flower's deployment engine on loopback: a SuperLink, three client SuperNodes (two-server: and the second server's
and the dealer's, named by their node config `role`) and `flwr run` of the app that `secagg flower-app` writes; the
ServerApp streams the per-layer report and writes the results folder."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr", reason="the Flower engine is the optional extra '.[flower]'")

BIN = Path(sys.executable).parent
CLIENTS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def _deploy(tmp_path, stack: str, roles: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> tuple[str, dict]:
    """Runs one round of `stack` on loopback, the nodes of `roles` after the clients; returns the ServerApp's
    streamed output and the saved result."""
    link = _free_port()
    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{link}"\ninsecure = true\n')
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # the SuperLink starts flower-superexec
    logs, procs = [], []

    def start(name: str, *args: str) -> None:
        log = open(tmp_path / f"{name}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen([str(BIN / args[0]), *args[1:]], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start("superlink", "flower-superlink", "--insecure", "--port", str(link))
        _wait_for(link, 60)
        for c, role in [(c, "") for c in range(CLIENTS)] + [(CLIENTS + k, role) for k, role in enumerate(roles)]:
            start(f"node{c}", "flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link}", "--port", str(_free_port()),
                  "--node-config", f"partition-id={c} num-partitions={CLIENTS}" + (f' role="{role}"' if role else ""))
        app, results = tmp_path / "app", tmp_path / "results"
        subprocess.run([str(BIN / "secagg"), "flower-app", str(app), "--out", str(results), "--set", f"clients={CLIENTS}", "--set", "rounds=1",
                        "--set", f"stack={stack}", "--set", "data=breast_cancer", "--set", "model=logreg", "--set", "sample_fraction=1.0",
                        "--set", "dropout=0", "--set", "epochs=1", *extra], env=env, check=True, capture_output=True)
        run = subprocess.run([str(BIN / "flwr"), "run", str(app), "local", "--stream"], env=env, capture_output=True, text=True, timeout=1800)
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout, json.loads((results / "result.json").read_text())
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        for log in logs:
            log.close()


def test_the_experiment_runs_on_flower_deployment_over_loopback(tmp_path):
    out, saved = _deploy(tmp_path, "ddp+secagg+")
    assert "**secagg+**" in out and "distributed DP this round" in out
    assert saved["config"]["engine"] == "flower-deployment" and len(saved["rounds"]) == 1
    assert saved["rounds"][0]["included"] == [0, 1, 2]
    assert [r["layer"] for r in saved["rounds"][0]["reports"]] == ["secagg+", "noise", "discretize", "rotation", "clip"]


@pytest.mark.soak  # every S0 <-> S1 interaction is a Flower message, each a new ClientApp process: about 20 here (12-bit range check)
def test_two_server_runs_on_flower_deployment_with_s1_and_the_dealer_on_their_own_supernodes(tmp_path):
    out, saved = _deploy(tmp_path, "ddp+two-server", roles=("second-server", "dealer"), extra=("--set", "bits=12"))
    assert "**two-server**" in out
    assert saved["config"]["engine"] == "flower-deployment" and len(saved["rounds"]) == 1
    first = saved["rounds"][0]
    assert not first.get("aborted") and len(first["included"]) == 1 and set(first["included"]) <= {0, 1, 2}  # Krum selects one
    assert first["reports"][0]["layer"] == "two-server"
    assert {k: first["reports"][0]["guarantee"]["parameters"][k] for k in ("n", "m", "rejected")} == {"n": 3, "m": 3, "rejected": 0}
    cost = first["reports"][0]["cost"]
    assert cost["party_seconds"]["second server"] > 0 and cost["party_seconds"]["dealer"] > 0
    assert cost["bytes_between"]["server -> second server"] > cost["bytes_up_mean"]  # the sealed shares S0 relayed
