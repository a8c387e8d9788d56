"""`secagg sweep`: a grid over configuration fields with several seeds a cell, run in parallel worker
processes and resumable (finished runs are skipped); writes sweep.json, sweep.csv (one row a run, then
one row a cell: mean, sample std and a 95% Student-t interval over its seeds) and the plots of
`fl.sweep_plots`.

Layout of a sweep folder: sweep.json (the specification and every run's summary), sweep.csv, the PNGs,
and runs/<field=value,...,seed=s>/, each a results folder as `secagg run` writes one, without its PNGs
(`secagg report` on it draws them).
"""

from __future__ import annotations

import csv
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from fl.config import config_from, for_stack
from fl.experiment import ExperimentConfig
from fl.results import load_saved
from fl.run_commands import run
from fl.sweep_plots import plot_sweep

SPEC_FILE = "sweep.json"
METRICS = ("final_accuracy", "epsilon")  # aggregated over seeds: mean, std, 95% interval


@dataclass(frozen=True)
class SweepSpec:
    """`base` field values shared by every run, `grid` field -> values (cells: their product, in
    order), and `seeds` runs a cell with seed = base seed + 0 .. seeds - 1."""

    base: dict
    grid: dict
    seeds: int

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, found {self.seeds}")
        if not self.grid:
            raise ValueError("a sweep needs at least one --grid FIELD=V1,V2 (or a [sweep] table)")
        for key, values in self.grid.items():
            if key in ("seed", "data_seed", "model_seed", "protocol_seed"):
                raise ValueError(f"--grid {key}: seeds are swept by --seeds, not by the grid")
            if not isinstance(values, list) or not values:
                raise ValueError(f"--grid {key}: expected a non-empty list of values, found {values!r}")

    def cells(self) -> list[dict]:
        return [dict(zip(self.grid, combo)) for combo in itertools.product(*self.grid.values())]

    def runs(self) -> list[tuple[dict, int]]:
        """(cell, seed) for every run, cell by cell."""
        first = int(self.base.get("seed", 0))
        return [(cell, first + s) for cell in self.cells() for s in range(self.seeds)]

    def values(self, cell: dict, seed: int) -> dict:
        """The fields of one run: the base (without rule and f if the cell's stack takes no rule), the cell, the seed."""
        stack = str(cell.get("stack", self.base.get("stack", ExperimentConfig.stack)))
        return {**for_stack(self.base, stack), **cell, "seed": seed}

    def to_json(self) -> dict:
        return json.loads(json.dumps({"base": self.base, "grid": self.grid, "seeds": self.seeds}, default=str))


def parse_grid(pairs: list[str]) -> dict[str, list[str]]:
    """["noise_multiplier=0.5,1", "byzantine=0,0.2"] -> {"noise_multiplier": ["0.5", "1"], "byzantine": ["0", "0.2"]}."""
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, values = pair.partition("=")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not items:
            raise ValueError(f"--grid expects FIELD=V1,V2,..., found {pair!r}")
        if key.strip() in grid:
            raise ValueError(f"--grid {key.strip()} given twice")
        grid[key.strip()] = items
    return grid


def run_name(cell: dict, seed: int) -> str:
    """The folder of one run: "noise_multiplier=0.5,byzantine=0.2,seed=1" (path separators replaced)."""
    return ",".join(f"{k}={v}" for k, v in {**cell, "seed": seed}.items()).replace("/", "_").replace(os.sep, "_")


def validate(spec: SweepSpec) -> None:
    """Builds every run's configuration before any runs. Raises ValueError naming the cell."""
    for cell, seed in spec.runs():
        try:
            config_from(spec.values(cell, seed))
        except ValueError as exc:
            raise ValueError(f"sweep cell {run_name(cell, seed)}: {exc}") from None


def _finished(folder: Path, rounds: int) -> dict | None:
    """The summary of a run that completed all its rounds, else None."""
    try:
        data = load_saved(folder)
    except (FileNotFoundError, ValueError):
        return None
    return data.get("summary") if not data["interrupted"] and len(data["rounds"]) == rounds else None


def _ignore_sigint() -> None:  # workers: the parent handles Ctrl-C and terminates them
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_one(job: tuple[dict, str, list[str]]) -> tuple[str, dict]:
    """Worker: one run into its folder (replacing an unfinished one); returns (folder, summary)."""
    values, folder, command = job
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    run(config_from(values), Path(folder), force=True, command=command, progress=False, plots=False)  # `secagg report RUN` draws them
    return folder, load_saved(Path(folder))["summary"]


def _bar(done: int, total: int, skipped: int, start: float) -> None:
    filled = int(20 * done / max(total, 1))
    print(f"\rsweep [{'#' * filled}{'.' * (20 - filled)}] {done}/{total} runs ({skipped} already done) {time.monotonic() - start:.0f} s",
          end="" if done < total else "\n", file=sys.stderr, flush=True)


def _open(folder: Path, spec: SweepSpec) -> None:
    """Creates the sweep folder, or resumes one made by the same specification.

    Raises:
        ValueError: if `folder` is a file, holds something else, or holds a different sweep.
    """
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {folder}: is a file, not a sweep folder")
    path = folder / SPEC_FILE
    if path.exists():
        found = json.loads(path.read_text()).get("spec")
        if found != spec.to_json():
            raise ValueError(f"--out {folder}: holds a different sweep ({found}); choose another --out to start this one")
    elif folder.exists() and any(folder.iterdir()):
        raise ValueError(f"--out {folder}: exists and is not a sweep folder; choose another --out")
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    for stale in (folder / "runs").glob(".*.tmp"):  # runs that a terminated worker left half-written
        shutil.rmtree(stale, ignore_errors=True)


def sweep(spec: SweepSpec, folder: Path, *, workers: int | None = None, command: list[str] | None = None) -> tuple[dict, bool]:
    """Runs every (cell, seed) not finished yet in `folder`, `workers` at a time (default: the CPU count;
    1 runs in this process), then writes sweep.json, sweep.csv and the plots. Ctrl-C stops the pending
    runs and keeps the finished ones (run the same command again to resume). Returns (sweep.json's
    content, interrupted)."""
    validate(spec)
    folder = Path(folder)
    _open(folder, spec)
    rounds = {run_name(c, s): config_from(spec.values(c, s)).rounds for c, s in spec.runs()}
    summaries = {name: found for name in rounds if (found := _finished(folder / "runs" / name, rounds[name])) is not None}
    jobs = [(spec.values(cell, seed), str(folder / "runs" / run_name(cell, seed)), list(command or sys.argv))
            for cell, seed in spec.runs() if run_name(cell, seed) not in summaries]
    start, skipped, interrupted = time.monotonic(), len(summaries), False
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    _bar(skipped, len(rounds), skipped, start)
    pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_ignore_sigint) if workers > 1 and jobs else None
    try:
        for path, found in (pool.imap_unordered(_run_one, jobs) if pool else map(_run_one, jobs)):
            summaries[Path(path).name] = found
            _bar(len(summaries), len(rounds), skipped, start)
    except KeyboardInterrupt:
        interrupted = True
        print(f"\nsweep interrupted: {len(summaries)} of {len(rounds)} runs are done; run the same command to resume", file=sys.stderr)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    data = write(folder, spec, summaries)
    return data, interrupted


def _stats(values: list[float]) -> dict:
    """mean, sample std and the 95% Student-t interval of the mean (None with fewer than 2 values)."""
    if not values:
        return {"mean": None, "std": None, "ci95": None}
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return {"mean": float(x[0]), "std": None, "ci95": None}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, len(x) - 1) * std / np.sqrt(len(x)))
    return {"mean": float(x.mean()), "std": std, "ci95": [float(x.mean()) - half, float(x.mean()) + half]}


def write(folder: Path, spec: SweepSpec, summaries: dict[str, dict]) -> dict:
    """sweep.json (spec, then each cell with its runs and the statistics of METRICS), sweep.csv and the plots."""
    cells = []
    for cell in spec.cells():
        runs = [{"seed": seed, "folder": f"runs/{run_name(cell, seed)}", "summary": summaries[run_name(cell, seed)]}
                for c, seed in spec.runs() if c == cell and run_name(cell, seed) in summaries]
        metrics = {m: _stats([float(r["summary"][m]) for r in runs if r["summary"].get(m) is not None]) for m in METRICS}
        cells.append({"fields": cell, "runs": runs, "metrics": metrics})
    data = {"spec": spec.to_json(), "complete": len(summaries) == len(spec.runs()), "cells": cells}
    (folder / SPEC_FILE).write_text(json.dumps(data, indent=1))
    _write_csv(folder / "sweep.csv", list(spec.grid), cells)
    plot_sweep(data, folder)
    return data


def _write_csv(path: Path, fields: list[str], cells: list[dict]) -> None:
    columns = ["row", *fields, "seed", "seeds_done", *[f"{m}{s}" for m in METRICS for s in ("", "_std", "_ci95_low", "_ci95_high")],
               "f", "attackers_per_round", "rounds_completed", "client_seconds_per_round", "server_seconds_per_round", "bytes_up_per_client_per_round", "folder"]
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        for cell in cells:
            for run in cell["runs"]:
                top = run["summary"]
                writer.writerow({"row": "run", **cell["fields"], "seed": run["seed"], "seeds_done": 1, "final_accuracy": top["final_accuracy"],
                                 "epsilon": top["epsilon"], "f": top["f"], "attackers_per_round": top["attackers_per_round"],
                                 "rounds_completed": top["rounds_completed"], "client_seconds_per_round": top["seconds_per_round"].get("clients"),
                                 "server_seconds_per_round": top["seconds_per_round"].get("server"),
                                 "bytes_up_per_client_per_round": top["bytes_per_round"].get("up a client"), "folder": run["folder"]})
            row = {"row": "cell", **cell["fields"], "seeds_done": len(cell["runs"])}
            for m, st in cell["metrics"].items():
                row.update({m: st["mean"], f"{m}_std": st["std"], f"{m}_ci95_low": st["ci95"][0] if st["ci95"] else None,
                            f"{m}_ci95_high": st["ci95"][1] if st["ci95"] else None})
            writer.writerow(row)


def load_sweep(folder: Path) -> dict:
    """sweep.json of a sweep folder. Raises FileNotFoundError naming the folder, ValueError if malformed."""
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {SPEC_FILE} in {folder}")
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict) or not isinstance(data.get("cells"), list):
        raise ValueError(f"{path}: not a sweep: needs 'spec' and 'cells'")
    return data


def render_sweep(data: dict) -> str:
    """Markdown: one row a cell (mean ± std and the 95% interval of each metric, seeds done)."""
    fields = list(data["spec"]["grid"])
    head = [*fields, "seeds", *[f"{m} (mean ± std [95% CI])" for m in METRICS]]
    lines = [f"# Sweep: {', '.join(fields)} x {data['spec']['seeds']} seeds" + ("" if data["complete"] else " (incomplete)"), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in data["cells"]:
        shown = []
        for m in METRICS:
            st = cell["metrics"][m]
            shown.append("-" if st["mean"] is None else f"{st['mean']:.4g}" + (f" ± {st['std']:.2g} [{st['ci95'][0]:.4g}, {st['ci95'][1]:.4g}]" if st["std"] is not None else ""))
        lines.append("| " + " | ".join([*(str(cell["fields"][f]) for f in fields), str(len(cell["runs"])), *shown]) + " |")
    return "\n".join(lines) + "\n"


def report_sweep(folder: Path) -> str:
    """Re-renders sweep.csv, the plots and sweep.md of a sweep folder from its sweep.json."""
    data = load_sweep(folder)
    spec = SweepSpec(**data["spec"])
    summaries = {Path(r["folder"]).name: r["summary"] for cell in data["cells"] for r in cell["runs"]}
    text = render_sweep(write(Path(folder), spec, summaries))
    (Path(folder) / "sweep.md").write_text(text)
    return text
