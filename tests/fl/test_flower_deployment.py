"""Flower's deployment engine on loopback: a SuperLink, three client SuperNodes (HE: and the key holder's, for
ckks-robust with its robust policy in its own --node-config; two-server: the second server's and the dealer's, named
by their node config `role`) and `flwr run` of the app that `secagg flower-app` writes; the ServerApp streams the
per-layer report and writes the results folder.

A deployment is ~90 s on 2 cores, nearly all of it Flower's own waits (each message a new ClientApp process, the
ServerApp's and SuperNodes' fixed 3-s polls), so the selected cases run in one background thread from the session's
first test (`start_in_background`, called by tests/fl/conftest.py, which also moves these tests to the session's end);
a test takes its case's result, or deploys in place if nothing ran it in the background."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

pytest.importorskip("flwr", reason="the Flower engine is the optional extra '.[flower]'")

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 3
_RUNNING: list[subprocess.Popen] = []  # every Flower process a deployment started, until it ends (stop_background)
_BACKGROUND: dict[str, Future] = {}  # case -> (its folder, the ServerApp's output, the saved result)
_THREADS: list[tuple[threading.Thread, Path]] = []  # start_in_background's thread and its folder
_STOP = threading.Event()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not _STOP.is_set():
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


HOLDER_POLICY = 'he-round-type="robust" he-rule="multi_krum" he-f=1 he-min-clients=2 he-norm-bound=1.0'  # the run's (review 14: compared)
CASES = {  # stack fields, layers reported, whether its clients sign (then keys are provisioned with `secagg keys`), a line the report prints, inputs kept
    "ddp+secagg+": (["--set", "stack=ddp+secagg+"], ["secagg+", "noise", "discretize", "rotation", "clip"], False, "distributed DP this round", 3),
    "active secagg+": (["--set", "stack=secagg+", "--set", "active=true"], ["secagg+", "discretize", "clip"], True, "", 3),
    "ckks": (["--set", "stack=ckks"], ["ckks", "clip"], True, "key holder", 3),
    "ckks-robust": (["--set", "stack=ckks-robust", "--set", "rule=multi_krum"], ["ckks-robust", "clip"], True, "key holder", 2),  # Multi-Krum keeps n - f
}
TWO_SERVER = "ddp+two-server"  # S1 and the dealer on their own nodes, a 12-bit range check


def _deploy(tmp_path, fields: list[str], signing: bool = False, roles: tuple[str, ...] = (), holder: str = "", pins: str = "") -> tuple[str, dict]:
    """Runs one round with the experiment `fields` (--set pairs) on loopback, the nodes of `roles` (a role "" is
    the key holder, `holder` more of its node config) after the clients, each node config ending with `pins`; a signing
    stack's keys are provisioned in tmp_path / "keys". Returns the ServerApp's streamed output and the saved result."""
    link = _free_port()
    home = tmp_path / "flwr-home"
    home.mkdir()
    (home / "config.toml").write_text(f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{link}"\ninsecure = true\n')
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the SuperLink starts flower-superexec
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # every Flower process imports this checkout's fl
    logs, procs = [], []

    def start(name: str, *args: str, stderr=subprocess.STDOUT) -> subprocess.Popen:
        if _STOP.is_set():
            raise RuntimeError("the session ended: no more Flower processes")
        logs.append(open(tmp_path / f"{name}.log", "w"))
        procs.append(subprocess.Popen([str(BIN / args[0]), *args[1:]], env=env, stdout=logs[-1], stderr=stderr, start_new_session=True))
        _RUNNING.append(procs[-1])
        return procs[-1]

    try:
        start("superlink", "flower-superlink", "--insecure", "--port", str(link))
        _wait_for(link, 60)
        keys = tmp_path / "keys"
        if signing or roles:
            subprocess.run([sys.executable, "-m", "fl.cli", "keys", "--out", str(keys), "--clients", str(CLIENTS)], env=env, check=True, capture_output=True)
        for c, role in [(c, "") for c in range(CLIENTS)] + [(CLIENTS + k, role) for k, role in enumerate(roles)]:
            pki = "" if not signing else (f' he-client-keys="{keys}/clients" he-signing-key="{keys}/keys/key-holder.pem"' if c == CLIENTS else
                                          f' signing-key="{keys}/keys/{c}.pem" client-keys="{keys}/clients" he-key-holder-key="{keys}/key-holder.pub"')
            if "second-server" in roles and not signing:  # a two-server client signs its sealed share
                pki = f' signing-key="{keys}/keys/{c}.pem" client-keys="{keys}/clients"'
            if c == CLIENTS and role == "":
                pki += holder
            if role:  # S1 and the dealer: their own identity and the other's public key (`secagg keys`)
                own, peer = ("second-server", "dealer") if role == "second-server" else ("dealer", "second-server")
                pki = f' {own}-signing-key="{keys}/keys/{own}.pem" {peer}-key="{keys}/{peer}.pub"'
                pki += f' client-keys="{keys}/clients"' if role == "second-server" else ""  # S1 verifies the clients' signatures
            elif "second-server" in roles:  # a two-server client pins S1's public key
                pki += f' second-server-key="{keys}/second-server.pub"'

            start(f"node{c}", "flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link}", "--port", str(_free_port()),
                  "--node-config", f"partition-id={c} num-partitions={CLIENTS}{pki}{pins}" + (f' role="{role}"' if role else ""))
        app, results = tmp_path / "app", tmp_path / "results"
        subprocess.run([sys.executable, "-m", "fl.cli", "flower-app", str(app), "--out", str(results), "--set", f"clients={CLIENTS}", "--set", "rounds=1",
                        *fields, "--set", "data=breast_cancer", "--set", "model=logreg", "--set", "sample_fraction=1.0",
                        "--set", "dropout=0", "--set", "epochs=1", *(["--keys", str(keys)] if signing or roles else [])], env=env, check=True, capture_output=True)
        with open(tmp_path / "run.err", "w") as err:
            status = start("run", "flwr", "run", str(app), "local", "--stream", stderr=err).wait(timeout=1800)
        logs[-1].close()
        out, err = (tmp_path / "run.log").read_text(), (tmp_path / "run.err").read_text()
        assert status == 0, out + err
        return out, json.loads((results / "result.json").read_text())
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
        for p in procs:
            _RUNNING.remove(p)


def _deploy_case(case: str, tmp_path: Path) -> tuple[str, dict]:
    """`_deploy` of a CASES case or of TWO_SERVER in `tmp_path`."""
    if case == TWO_SERVER:  # every node pins what `secagg flower-app` prints for it (`node_pins`: f, the preset's fields)
        from fl.config import config_from
        from fl.flower_engine import node_pins

        config = config_from({"stack": TWO_SERVER, "bits": 12, "clients": CLIENTS, "rounds": 1, "data": "breast_cancer", "model": "logreg",
                              "sample_fraction": 1.0, "dropout": 0, "epochs": 1, "engine": "flower-deployment"})
        pins = "".join(f" {k}={json.dumps(v)}" for k, v in node_pins(config).items())
        return _deploy(tmp_path, ["--set", "stack=ddp+two-server", "--set", "bits=12"], roles=("second-server", "dealer"), pins=pins)
    fields, _, signing, _, _ = CASES[case]
    holder = f' {HOLDER_POLICY} he-ledger-file="{tmp_path / "ledger.json"}"' if case == "ckks-robust" else ""
    return _deploy(tmp_path, fields, signing, roles=("",) if case in ("ckks", "ckks-robust") else (), holder=holder)


def _deployed(case: str, tmp_path: Path) -> tuple[Path, str, dict]:
    """(its folder, the ServerApp's output, the saved result) of `case`: the background run's, else a run in `tmp_path` now."""
    future = _BACKGROUND.pop(case, None)
    return future.result() if future else (tmp_path, *_deploy_case(case, tmp_path))


def start_in_background(cases: list[str]) -> None:
    """Deploys `cases` one after another in a daemon thread, each in a folder of its own (stop_background removes them)."""
    futures = {case: Future() for case in cases}
    _BACKGROUND.update(futures)
    root = Path(tempfile.mkdtemp(prefix="flower-deployment-"))

    def run() -> None:
        for k, (case, future) in enumerate(futures.items()):
            if _STOP.is_set():
                future.set_exception(RuntimeError(f"the session ended before the {case} deployment started"))
                continue
            folder = root / str(k)
            folder.mkdir()
            try:
                future.set_result((folder, *_deploy_case(case, folder)))
            except BaseException as exc:  # noqa: BLE001 -- anything, pytest's outcomes too: the test that takes this case raises it
                future.set_exception(exc)

    thread = threading.Thread(target=run, name="flower-deployments", daemon=True)
    _THREADS.append((thread, root))
    thread.start()


def stop_background() -> None:
    """Ends the Flower processes still running (the session ended first: -x, Ctrl-C), waits for the thread, removes its folders."""
    _STOP.set()
    for p in _RUNNING.copy():  # the thread removes what ends, and kills what SIGTERM leaves
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for thread, root in _THREADS:
        thread.join(60)
        shutil.rmtree(root, ignore_errors=True)
    _THREADS.clear()


@pytest.mark.parametrize("case", [pytest.param("ddp+secagg+"), pytest.param("active secagg+", marks=pytest.mark.soak),
                                  pytest.param("ckks", marks=pytest.mark.soak), pytest.param("ckks-robust", marks=pytest.mark.soak)])
def test_the_experiment_runs_on_flower_deployment_over_loopback(tmp_path, case):
    """Signing stacks: each client node's config names its own key file and the public-key folder, the key holder's
    its he-client-keys (for ckks-robust also its robust policy and its ledger file), and the server's copy comes with
    the app (`flower-app --keys`). Active secagg+, ckks and ckks-robust take 2-5 min each on a 2-core machine, so they
    are `soak` (run them with `pytest -m soak tests/fl/test_flower_deployment.py`)."""
    _, layers, signing, line, kept = CASES[case]
    folder, out, saved = _deployed(case, tmp_path)
    assert f"**{layers[0]}**" in out and line in out
    assert saved["config"]["engine"] == "flower-deployment" and len(saved["rounds"]) == 1
    included = saved["rounds"][0]["included"]
    assert len(included) == kept and set(included) <= {0, 1, 2}, saved["rounds"][0].get("aborted")
    if case == "ckks-robust":  # the key holder's own ledger: one SCALARS, then the SELECTED_SUM of that selection
        ledger = json.loads((folder / "ledger.json").read_text())
        assert [(e["released"], e["selection"]) for e in ledger.values()] == [([2, 3], included)]
    assert [r["layer"] for r in saved["rounds"][0]["reports"]] == layers
    if signing:
        assert str(folder / "keys" / "clients") in saved["rounds"][0]["reports"][0]["guarantee"]["notes"]


@pytest.mark.soak  # every S0 <-> S1 interaction is a Flower message, each a new ClientApp process: about 20 here (12-bit range check)
@pytest.mark.parametrize("case", [TWO_SERVER])
def test_two_server_runs_on_flower_deployment_with_s1_and_the_dealer_on_their_own_supernodes(tmp_path, case):
    _, out, saved = _deployed(case, tmp_path)
    assert "**two-server**" in out
    assert saved["config"]["engine"] == "flower-deployment" and len(saved["rounds"]) == 1
    first = saved["rounds"][0]
    assert not first.get("aborted") and len(first["included"]) == 1 and set(first["included"]) <= {0, 1, 2}  # Krum selects one
    assert first["reports"][0]["layer"] == "two-server"
    assert {k: first["reports"][0]["guarantee"]["parameters"][k] for k in ("n", "m", "rejected")} == {"n": 3, "m": 3, "rejected": 0}
    cost = first["reports"][0]["cost"]
    assert cost["party_seconds"]["second server"] > 0 and cost["party_seconds"]["dealer"] > 0
    assert cost["bytes_between"]["server -> second server"] > cost["bytes_up_mean"]  # the sealed shares S0 relayed
