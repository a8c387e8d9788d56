"""The `secagg run`, `compare` and `report` commands: configuration, progress, results folders and the
privacy-robustness-utility table."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fl.config import config_from, load_toml, parse_overrides
from fl.experiment import STACK_RULES, ExperimentConfig, ExperimentResult, RoundRecord, run_experiment
from fl.results import load_saved, render, save

# The embedded default of `secagg run`: digits with a small MLP over 60 clients, half of them sampled a
# round, 10% dropouts, clipping, rotation, 20-bit discretization and Skellam noise (noise multiplier 1)
# before SecAgg+, 40 rounds.
DEFAULT_RUN = {"data": "digits", "model": "mlp", "clients": 60, "sample_fraction": 0.5, "rounds": 40, "stack": "ddp+secagg+",
               "dropout": 0.1, "noise_multiplier": 1.0, "clip": 1.0, "lr": 0.5, "epochs": 2}


def config_values(config_file: str | None, overrides: list[str], extra: dict | None = None) -> dict:
    """DEFAULT_RUN, then the TOML file, then `extra`, then --set overrides (later wins), as field values."""
    values = dict(DEFAULT_RUN)
    if config_file:
        values.update(load_toml(config_file))
    values.update(extra or {})
    values.update(parse_overrides(overrides))
    return values


def build_config(config_file: str | None, overrides: list[str], extra: dict | None = None) -> ExperimentConfig:
    """The validated experiment of `config_values`."""
    return config_from(config_values(config_file, overrides, extra))


def _progress(total: int, label: str):
    start = time.perf_counter()

    def show(record: RoundRecord) -> None:
        done = int(20 * record.round / total)
        eps = f" eps {float(record.cumulative_epsilon):.3g}" if record.cumulative_epsilon is not None else ""
        print(f"\r{label} [{'#' * done}{'.' * (20 - done)}] round {record.round}/{total} acc {record.accuracy:.3f}{eps} "
              f"({time.perf_counter() - start:.0f} s)", end="" if record.round < total else "\n", file=sys.stderr, flush=True)

    return show


def run(config: ExperimentConfig, out: Path | None) -> tuple[ExperimentResult, Path]:
    folder = out or Path("results") / f"{config.stack}-{config.data}-seed{config.seed}"
    result = run_experiment(config, on_round=_progress(config.rounds, config.stack))
    if result.interrupted:
        print("\ninterrupted: saving the completed rounds", file=sys.stderr)
    save(result, folder)
    return result, folder


def compare_table(results: list[ExperimentResult]) -> str:
    """One row a stack: final accuracy, cumulative epsilon, Byzantine clients tolerated, time and bytes a round
    (other parties: key holder, second server, dealer; bytes between: among the non-client parties)."""
    lines = ["| stack | final accuracy | epsilon | f tolerated | client s/round | server s/round | other parties s/round "
             "| bytes up/client/round | bytes between parties/round |", "|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        if not result.rounds:
            continue
        last = result.rounds[-1]
        per_round = [(sum(r.cost.client_seconds_mean for r in rec.reports), sum(r.cost.server_seconds for r in rec.reports),
                      sum(sum(r.cost.party_seconds.values()) for r in rec.reports), sum(r.cost.bytes_up_mean for r in rec.reports),
                      sum(sum(r.cost.bytes_between.values()) for r in rec.reports)) for rec in result.rounds]
        client, server, other, up, between = (sum(v) / len(per_round) for v in zip(*per_round))
        eps = "-" if last.cumulative_epsilon is None else f"{float(last.cumulative_epsilon):.3g}"
        f = next((r.guarantee.parameters.get("f") for r in last.reports if "f" in r.guarantee.parameters), 0)
        name = result.config.stack + (f"/{result.config.rule}" if result.config.stack in STACK_RULES else "")
        lines.append(f"| {name} | {last.accuracy:.4f} | {eps} | {f} | {client:.4f} | {server:.4f} | {other:.4f} | {up:,.0f} | {between:,.0f} |")
    return "\n".join(lines)


def report(folder: Path) -> str:
    data = load_saved(folder)
    text = render(data)
    (Path(folder) / "report.md").write_text(text)
    return text


__all__ = ["DEFAULT_RUN", "build_config", "compare_table", "report", "run"]
