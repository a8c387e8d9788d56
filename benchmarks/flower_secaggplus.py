"""Flower's SecAgg+ beside ours: same n, d, k, t and dropout rate, on the same machine, in one run.

    pip install -e '.[bench-flower]'                    # flwr[simulation] (Ray); not a core dependency
    python -m benchmarks.flower_secaggplus [--quick]    # n = 100, d in {1e5, 1e6}, 10% dropout (quick: n = 20, d = 1e4)

Flower's side is its own code, imported from its public modules and run as Flower runs it: a ServerApp
with `DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(num_shares=k + 1, reconstruction_threshold=t))`
and a ClientApp with `secaggplus_mod`, in Flower's simulation engine (`flwr.simulation.run_simulation`,
Ray backend, one CPU a client), in a fresh process a configuration. Measurements come from two mods
of ours around `secaggplus_mod`: one times each client's handling of each stage (CPU seconds of the
thread that runs it) and records the serialized size of every message both ways (`recorddict_to_proto`);
the other makes 10% of the clients (by node id) fail at the masked-vector stage, after sharing keys,
as our dropouts do. The server's CPU seconds are those of the thread running the workflow, stage by
stage. Ours is `secure_sum` with `SecAggPlus(n, k, t)` and the same number of clients dropping at the
masked-input stage. Client seconds are the mean over clients that stay to the end, summed over stages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import describe
from protocols import DropoutSchedule, SecAggPlus, Stage, secure_sum

CONFIGS = {"full": [(100, 100_000, 0.1), (100, 1_000_000, 0.1)], "quick": [(20, 10_000, 0.1)]}


def _dropped(node_id: int, rate: float) -> bool:
    return (node_id * 0x9E3779B97F4A7C15 % 2**64) / 2**64 < rate


def flower_worker(n: int, d: int, dropout: float, k: int, t: int, log: str) -> dict:
    """Runs one Flower SecAgg+ round in this process; returns its measurements."""
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.common import ndarrays_to_parameters
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
    from flwr.common.secure_aggregation.secaggplus_constants import Stage as FlowerStage
    from flwr.common.serde import recorddict_to_proto
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.simulation import run_simulation

    base = np.full(d, 0.001, dtype=np.float32)

    class Client(NumPyClient):
        def fit(self, parameters, config):
            return [base], 1, {}

    def measure(msg, ctxt, call_next):
        records = msg.content.config_records
        stage = records[RECORD_KEY_CONFIGS].get(Key.STAGE, "?") if RECORD_KEY_CONFIGS in records else "?"  # secaggplus_mod pops it
        down = recorddict_to_proto(msg.content).ByteSize()
        start = time.thread_time()
        reply = call_next(msg, ctxt)
        spent = time.thread_time() - start
        entry = {"node": msg.metadata.dst_node_id, "stage": stage, "cpu": spent, "down": down,
                 "up": recorddict_to_proto(reply.content).ByteSize() if reply.has_content() else 0}
        with open(log, "a") as f:
            f.write(json.dumps(entry) + "\n")
        return reply

    def drop(msg, ctxt, call_next):
        records = msg.content.config_records
        if RECORD_KEY_CONFIGS in records and records[RECORD_KEY_CONFIGS][Key.STAGE] == FlowerStage.COLLECT_MASKED_VECTORS \
                and _dropped(msg.metadata.dst_node_id, dropout):
            raise RuntimeError("simulated dropout")
        return call_next(msg, ctxt)

    class TimedWorkflow(SecAggPlusWorkflow):
        seconds: dict = {}

        def _timed(self, name, fn, *args):
            start = time.thread_time()
            ok = fn(*args)
            TimedWorkflow.seconds[name] = time.thread_time() - start
            return ok

        def setup_stage(self, *a):
            return self._timed("setup", super().setup_stage, *a)

        def share_keys_stage(self, *a):
            return self._timed("share_keys", super().share_keys_stage, *a)

        def collect_masked_vectors_stage(self, *a):
            return self._timed("collect_masked_vectors", super().collect_masked_vectors_stage, *a)

        def unmask_stage(self, *a):
            return self._timed("unmask", super().unmask_stage, *a)

    server = ServerApp()

    @server.main()
    def _main(grid, context):
        strategy = FedAvg(fraction_fit=1.0, min_fit_clients=n, min_available_clients=n, fraction_evaluate=0.0,
                          initial_parameters=ndarrays_to_parameters([np.zeros(d, dtype=np.float32)]))
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=1), strategy=strategy)
        DefaultWorkflow(fit_workflow=TimedWorkflow(num_shares=k + 1, reconstruction_threshold=t))(grid, legacy)

    start = time.perf_counter()
    run_simulation(server_app=server, client_app=ClientApp(client_fn=lambda context: Client().to_client(), mods=[measure, drop, secaggplus_mod]),
                   num_supernodes=n, backend_config={"client_resources": {"num_cpus": 1}})
    wall = time.perf_counter() - start
    return {"server_by_stage": TimedWorkflow.seconds, "wall": wall}


def flower(n: int, d: int, dropout: float, k: int, t: int) -> dict:
    """One Flower round in a fresh process; per-client CPU and bytes from the mods' log."""
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        cmd = [sys.executable, "-m", "benchmarks.flower_secaggplus", "--worker", str(n), str(d), str(dropout), str(k), str(t), log]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "RAY_DEDUP_LOGS": "0"})
        result = json.loads(done.stdout.strip().splitlines()[-1])
        entries = [json.loads(line) for line in open(log)]
    by_node: dict[int, dict] = {}
    for e in entries:
        node = by_node.setdefault(e["node"], {"cpu": 0.0, "up": 0, "down": 0, "stages": set()})
        node["cpu"] += e["cpu"]
        node["up"] += e["up"]
        node["down"] += e["down"]
        node["stages"].add(e["stage"])
    stayed = [v for v in by_node.values() if "unmask" in v["stages"]]
    return {"client_s": float(np.mean([v["cpu"] for v in stayed])), "server_s": sum(result["server_by_stage"].values()),
            "server_unmask_s": result["server_by_stage"].get("unmask", 0.0), "bytes_up": float(np.mean([v["up"] for v in stayed])),
            "bytes_down": float(np.mean([v["down"] for v in stayed])), "dropped": len(by_node) - len(stayed), "wall": result["wall"]}


def ours(n: int, d: int, dropped: int) -> tuple[dict, int, int]:
    protocol = SecAggPlus.for_clients(n, bits=32, dropout=0.1)
    schedule = DropoutSchedule({i: Stage.MASKED_INPUT for i in range(dropped)})
    x = np.random.default_rng(0).integers(0, 2**32, (n, d), dtype=np.uint64).astype(np.uint32)
    start = time.perf_counter()
    out = secure_sum(x, protocol=protocol, dropouts=schedule, seed=0)
    wall = time.perf_counter() - start
    c, p = out.reports[0].cost, out.reports[0].guarantee.parameters
    client = sum(c.client_seconds_by_stage.values())  # per stage: the mean over the clients active in it
    return ({"client_s": client, "server_s": c.server_seconds, "server_unmask_s": c.server_seconds_by_stage.get("unmasking", 0.0),
             "bytes_up": c.bytes_up_mean, "bytes_down": c.bytes_down_mean, "wall": wall}, p["k"], p["t"])


def run(quick: bool, folder: Path) -> None:
    print("| n | d | dropout | k | t | dropped | client s: Flower / ours | server s: Flower / ours | server unmask s: Flower / ours "
          "| B up/client: Flower / ours | B down/client: Flower / ours | wall s: Flower (Ray) / ours |")
    print("|---" * 12 + "|")
    rows = []
    for n, d, dropout in CONFIGS["quick" if quick else "full"]:
        protocol = SecAggPlus.for_clients(n, bits=32, dropout=0.1)
        k, t = protocol.k, protocol.t
        theirs = flower(n, d, dropout, k, t)
        mine, _, _ = ours(n, d, theirs["dropped"])
        rows.append({"n": n, "d": d, "k": k, "t": t, **{f"flower_{key}": v for key, v in theirs.items()}, **{f"ours_{key}": v for key, v in mine.items()}})
        r = lambda key: f"{theirs[key]:.3f} / {mine[key]:.3f} ({theirs[key] / mine[key]:.1f}x)"  # noqa: E731
        b = lambda key: f"{theirs[key]:,.0f} / {mine[key]:,.0f} ({theirs[key] / mine[key]:.2f}x)"  # noqa: E731
        print(f"| {n} | {d:.0e} | {dropout:.0%} | {k} | {t} | {theirs['dropped']} | {r('client_s')} | {r('server_s')} | {r('server_unmask_s')} "
              f"| {b('bytes_up')} | {b('bytes_down')} | {theirs['wall']:.1f} / {mine['wall']:.1f} |", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ("flower_quick.json" if quick else "flower.json")).write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        n, d, dropout, k, t, log = args.worker
        print(json.dumps(flower_worker(int(n), int(d), float(dropout), int(k), int(t), log)))
        return
    print(describe())
    run(args.quick, Path("benchmarks/results"))


if __name__ == "__main__":
    main()
