"""Flower's deployment engine on loopback: a SuperLink, three client SuperNodes (HE: and the key holder's, for
ckks-robust with its robust policy in its own --node-config; two-server: the second server's and the dealer's, named
by their node config `role`) and `flwr run` of the app that `secagg flower-app` writes; the ServerApp streams the
per-layer report and writes the results folder."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fl.cli import main

pytest.importorskip("flwr", reason="the Flower engine is the optional extra '.[flower]'")

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
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


HOLDER_POLICY = 'he-round-type="robust" he-rule="multi_krum" he-f=1 he-min-clients=1 he-norm-bound=1.0'
CASES = {  # stack fields, layers reported, whether its clients sign (then keys are provisioned with `secagg keys`), a line the report prints, inputs kept
    "ddp+secagg+": (["--set", "stack=ddp+secagg+"], ["secagg+", "noise", "discretize", "rotation", "clip"], False, "distributed DP this round", 3),
    "active secagg+": (["--set", "stack=secagg+", "--set", "active=true"], ["secagg+", "discretize", "clip"], True, "", 3),
    "ckks": (["--set", "stack=ckks"], ["ckks", "clip"], True, "key holder", 3),
    "ckks-robust": (["--set", "stack=ckks-robust", "--set", "rule=multi_krum"], ["ckks-robust", "clip"], True, "key holder", 2),  # Multi-Krum keeps n - f
}


def _deploy(tmp_path, fields: list[str], signing: bool = False, roles: tuple[str, ...] = (), holder: str = "") -> tuple[str, dict]:
    """Runs one round with the experiment `fields` (--set pairs) on loopback, the nodes of `roles` (a role "" is
    the key holder, `holder` more of its node config) after the clients; a signing stack's keys are provisioned in
    tmp_path / "keys". Returns the ServerApp's streamed output and the saved result."""
    link = _free_port()
    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{link}"\ninsecure = true\n')
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the SuperLink starts flower-superexec
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # every Flower process imports this checkout's fl
    logs, procs = [], []

    def start(name: str, *args: str) -> None:
        log = open(tmp_path / f"{name}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen([str(BIN / args[0]), *args[1:]], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start("superlink", "flower-superlink", "--insecure", "--port", str(link))
        _wait_for(link, 60)
        keys = tmp_path / "keys"
        if signing or roles:
            assert main(["keys", "--out", str(keys), "--clients", str(CLIENTS)]) == 0
        for c, role in [(c, "") for c in range(CLIENTS)] + [(CLIENTS + k, role) for k, role in enumerate(roles)]:
            pki = "" if not signing else (f' he-client-keys="{keys}/clients" he-signing-key="{keys}/keys/key-holder.pem"' if c == CLIENTS else
                                          f' signing-key="{keys}/keys/{c}.pem" client-keys="{keys}/clients" he-key-holder-key="{keys}/key-holder.pub"')
            if c == CLIENTS and role == "":
                pki += holder
            if role:  # S1 and the dealer: their own identity and the other's public key (`secagg keys`)
                own, peer = ("second-server", "dealer") if role == "second-server" else ("dealer", "second-server")
                pki = f' {own}-signing-key="{keys}/keys/{own}.pem" {peer}-key="{keys}/{peer}.pub"'

            start(f"node{c}", "flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link}", "--port", str(_free_port()),
                  "--node-config", f"partition-id={c} num-partitions={CLIENTS}{pki}" + (f' role="{role}"' if role else ""))
        app, results = tmp_path / "app", tmp_path / "results"
        assert main(["flower-app", str(app), "--out", str(results), "--set", f"clients={CLIENTS}", "--set", "rounds=1", *fields, "--set", "data=breast_cancer",
                     "--set", "model=logreg", "--set", "sample_fraction=1.0", "--set", "dropout=0", "--set", "epochs=1",
                     *(["--keys", str(keys)] if signing else [])]) == 0  # in this process: the app folder is all it makes
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


@pytest.mark.parametrize("case", [pytest.param("ddp+secagg+"), pytest.param("active secagg+", marks=pytest.mark.soak),
                                  pytest.param("ckks", marks=pytest.mark.soak), pytest.param("ckks-robust", marks=pytest.mark.soak)])
def test_the_experiment_runs_on_flower_deployment_over_loopback(tmp_path, case):
    """Signing stacks: each client node's config names its own key file and the public-key folder, the key holder's
    its he-client-keys (for ckks-robust also its robust policy and its ledger file), and the server's copy comes with
    the app (`flower-app --keys`). Active secagg+, ckks and ckks-robust take 2-5 min each on a 2-core machine, so they
    are `soak` (run them with `pytest -m soak tests/fl/test_flower_deployment.py`)."""
    fields, layers, signing, line, kept = CASES[case]
    holder = f' {HOLDER_POLICY} he-ledger-file="{tmp_path / "ledger.json"}"' if case == "ckks-robust" else ""
    out, saved = _deploy(tmp_path, fields, signing, roles=("",) if case in ("ckks", "ckks-robust") else (), holder=holder)
    assert f"**{layers[0]}**" in out and line in out
    assert saved["config"]["engine"] == "flower-deployment" and len(saved["rounds"]) == 1
    included = saved["rounds"][0]["included"]
    assert len(included) == kept and set(included) <= {0, 1, 2}, saved["rounds"][0].get("aborted")
    if case == "ckks-robust":  # the key holder's own ledger: one SCALARS, then the SELECTED_SUM of that selection
        ledger = json.loads((tmp_path / "ledger.json").read_text())
        assert [(e["released"], e["selection"]) for e in ledger.values()] == [([2, 3], included)]
    assert [r["layer"] for r in saved["rounds"][0]["reports"]] == layers
    if signing:
        assert str(tmp_path / "keys" / "clients") in saved["rounds"][0]["reports"][0]["guarantee"]["notes"]


@pytest.mark.soak  # every S0 <-> S1 interaction is a Flower message, each a new ClientApp process: about 20 here (12-bit range check)
def test_two_server_runs_on_flower_deployment_with_s1_and_the_dealer_on_their_own_supernodes(tmp_path):
    out, saved = _deploy(tmp_path, ["--set", "stack=ddp+two-server", "--set", "bits=12"], roles=("second-server", "dealer"))
    assert "**two-server**" in out
    assert saved["config"]["engine"] == "flower-deployment" and len(saved["rounds"]) == 1
    first = saved["rounds"][0]
    assert not first.get("aborted") and len(first["included"]) == 1 and set(first["included"]) <= {0, 1, 2}  # Krum selects one
    assert first["reports"][0]["layer"] == "two-server"
    assert {k: first["reports"][0]["guarantee"]["parameters"][k] for k in ("n", "m", "rejected")} == {"n": 3, "m": 3, "rejected": 0}
    cost = first["reports"][0]["cost"]
    assert cost["party_seconds"]["second server"] > 0 and cost["party_seconds"]["dealer"] > 0
    assert cost["bytes_between"]["server -> second server"] > cost["bytes_up_mean"]  # the sealed shares S0 relayed
