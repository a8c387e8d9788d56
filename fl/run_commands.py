"""The `secagg run`, `compare` and `report` commands: configuration, progress, results folders that are
never lost (`fl.output_folder`), provenance, and the privacy-robustness-utility table."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from fl.config import config_from, for_stack, load_toml, parse_overrides
from fl.experiment import STACKS, ExperimentConfig, ExperimentResult, RoundRecord, run_experiment
from fl.output_folder import OutputFolder
from fl.provenance import provenance
from fl.results import import_plotting, load_saved, plot, plot_comparison, plot_cost, render, save, stack_label, summary, to_dict
from fl.stacks import label

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
    start, aborted = time.perf_counter(), []

    def show(record: RoundRecord) -> None:
        done = int(20 * record.round / total)
        eps = f" eps {float(record.cumulative_epsilon):.3g}" if record.cumulative_epsilon is not None else ""
        if record.aborted:
            aborted.append(record.round)
        stops = f", {len(aborted)} aborted (last: round {aborted[-1]})" if aborted else ""
        print(f"\r{label} [{'#' * done}{'.' * (20 - done)}] round {record.round}/{total} acc {record.accuracy:.3f}{eps} "
              f"({time.perf_counter() - start:.0f} s{stops})", end="" if record.round < total else "\n", file=sys.stderr, flush=True)

    return show


def _now() -> datetime:
    return datetime.now(timezone.utc)


def run_on_engine(config: ExperimentConfig, on_round=None) -> ExperimentResult:
    """`run_experiment` on `config.engine`: in this process, or through Flower's simulation engine
    (`fl.flower_engine`, imported only then: flwr is an optional extra)."""
    if config.engine == "flower-sim":
        from fl.flower_engine import run_flower_simulation

        return run_flower_simulation(config, on_round)
    return run_experiment(config, on_round)


def run_into(config: ExperimentConfig, folder: Path, command: list[str], *, progress: bool = True, plots: bool = True) -> ExperimentResult:
    """Runs `config` and saves it with its provenance into `folder` (a temporary one: see `run`); `progress`
    prints a bar, `plots` draws the PNGs."""
    started = _now()
    if plots:
        import_plotting()
    result = run_on_engine(config, on_round=_progress(config.rounds, label(config.stack)) if progress else None)
    if result.interrupted and progress:
        print(f"\ninterrupted: saving the {len(result.rounds)} completed rounds", file=sys.stderr)
    save(result, folder, provenance(command=command, started=started, ended=_now(), seeds=config.seeds, engine=config.engine,
                                    stack=[s.to_dict() for s in config.specs]), plots=plots)
    return result


def default_folder(config: ExperimentConfig) -> Path:
    """results/<stack>-<data>-seed<seed> (<stack>: the preset, or the layer names joined by '-'), or its first free
    numbered sibling (-2, -3, ...): without --out a second run never collides with the first."""
    return _free(Path("results") / f"{label(config.stack)}-{Path(config.data).stem}-seed{config.seed}")


def _free(path: Path) -> Path:
    k = 1
    while (candidate := path.with_name(path.name + (f"-{k}" if k > 1 else ""))).exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        k += 1
    return candidate


def run(config: ExperimentConfig, out: Path | None, *, force: bool = False, command: list[str] | None = None,
        progress: bool = True, plots: bool = True) -> tuple[ExperimentResult, Path]:
    """Runs `config` into `out` (default: `default_folder`, never occupied), which is checked before the first round.

    The run writes into a temporary sibling; a completed run then replaces `out` (only with `force` if it
    exists), an interrupted one goes to `out` if it is free, else beside it (`<out>-interrupted`), and a
    failed one (an exception, Ctrl-C outside the rounds) leaves nothing and changes nothing.

    Raises:
        OutputExists: if `out` exists and `force` is false; ValueError if it is a file.
    """
    target = OutputFolder(out or default_folder(config), force=force)
    try:
        result = run_into(config, target.tmp, command or sys.argv, progress=progress, plots=plots)
    except BaseException:
        target.discard()
        raise
    return result, target.commit_beside("interrupted") if result.interrupted else target.commit()


def compare_configs(values: dict, stacks: list[str]) -> list[ExperimentConfig]:
    """One validated config a stack, a preset or a layer list (all of them before any runs); `rule` and `f`
    go only to the presets that take a robust rule.

    Raises:
        ValueError: naming the stack, for an unknown stack or an invalid field.
    """
    configs = []
    for stack in stacks:
        if stack not in STACKS and not any(c in stack for c in "(>"):  # a bare word: a preset name, mistyped
            raise ValueError(f"--stacks: unknown stack {stack!r}; known: {', '.join(STACKS)} (or layers: 'clip(bound=1) > secagg+')")
        try:
            configs.append(config_from({**for_stack(values, stack), "stack": stack}))
        except ValueError as exc:
            raise ValueError(f"stack {stack!r}: {exc}") from None
    return configs


def compare(configs: list[ExperimentConfig], out: Path | None, *, force: bool = False, command: list[str] | None = None) -> tuple[list[ExperimentResult], Path]:
    """Runs every config (one subfolder a stack) and writes compare.md and compare.png; the whole folder
    is written aside and moved into place as `run` does. Stops after a stack that was interrupted."""
    target = OutputFolder(out or _free(Path("results") / "compare"), force=force)
    results = []
    try:
        for config in configs:
            results.append(run_into(config, target.tmp / label(config.stack), command or sys.argv))
            if results[-1].interrupted:
                break
        (target.tmp / "compare.md").write_text(compare_table(results) + "\n")
        plot_comparison([to_dict(r) for r in results], target.tmp)
    except BaseException:
        target.discard()
        raise
    interrupted = any(r.interrupted for r in results)
    return results, target.commit_beside("interrupted") if interrupted else target.commit()


def compare_table(results: list[ExperimentResult]) -> str:
    """One row a stack: final accuracy, cumulative epsilon, Byzantine clients tolerated (the rule's f in
    the last completed round), and the mean over completed rounds of time and bytes a round (other parties:
    key holder, second server, dealer; bytes between: among the non-client parties)."""
    lines = ["| stack | final accuracy | epsilon | f tolerated | completed rounds | client s/round | server s/round | other parties s/round "
             "| bytes up/client/round | bytes between parties/round |", "|---|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        if not result.rounds:
            continue
        top = summary(to_dict(result)["rounds"], result.config)
        seconds, sizes = dict(top["seconds_per_round"]), dict(top["bytes_per_round"])
        client, server, up = seconds.pop("clients", 0.0), seconds.pop("server", 0.0), sizes.pop("up a client", 0.0)
        sizes.pop("down a client", None)
        eps = "-" if top["epsilon"] is None else f"{float(top['epsilon']):.3g}"
        f = "-" if top["f"] is None else top["f"]
        done = f"{top['rounds_completed']}/{len(result.rounds)}"
        lines.append(f"| {stack_label(to_dict(result)['config'])} | {top['final_accuracy']:.4f} | {eps} | {f} | {done} | {client:.4f} | {server:.4f} "
                     f"| {sum(seconds.values()):.4f} | {up:,.0f} | {sum(sizes.values()):,.0f} |")
    return "\n".join(lines)


def report(folder: Path, which: int | None = None) -> str:
    """Re-renders report.md and the plots of a saved run (cost.png for round `which`, or the mean)."""
    data = load_saved(folder)
    text = render(data)
    folder = Path(folder)
    (folder / "report.md").write_text(text)
    plot(data, folder)
    if which is not None:
        plot_cost(data, folder, which)
    return text


__all__ = ["DEFAULT_RUN", "build_config", "compare", "compare_configs", "compare_table", "default_folder", "report", "run", "run_into"]
