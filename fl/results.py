"""Saving, loading and rendering experiment results: a folder per run with result.json, report.md and plots."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import threading
from pathlib import Path

import numpy as np

from fl.experiment import STACK_RULES, ExperimentResult
from protocols import accounting
from protocols.core.report import Cost, Guarantee, LayerReport, ThreatModel, format_reports

_MECHANISMS = {cls.__name__: cls for cls in (accounting.Gaussian, accounting.DistributedDiscreteGaussian, accounting.Skellam)}


def _plain(value):
    """JSON-ready copy: dataclasses to dicts (mechanisms tagged with their type), enums to names, numpy to Python."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if type(value).__name__ in _MECHANISMS:
            out["type"] = type(value).__name__
        return out
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return value


def to_dict(result: ExperimentResult, provenance: dict | None = None) -> dict:
    """result.json's content: the summary, the config, the provenance (when given) and every round."""
    rounds = [_plain(r) for r in result.rounds]
    out = {"summary": summary(rounds, result.config), "config": _plain(result.config), "interrupted": result.interrupted,
           "stack": _plain({"given": [s.to_dict() for s in result.config.specs], "built": [layer.to_dict() for layer in result.stack_built]}),
           "epsilon_by_observer": _plain(result.epsilon_by_observer), "rounds": rounds}
    if provenance is not None:
        out["provenance"] = provenance
    return out


def party_costs(round_dict: dict) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(CPU seconds, bytes) of one saved round, {party or link: {layer: value}}: "clients" is the mean
    over clients, then the server and each other party (second server, dealer, key holder); bytes are
    "up a client", "down a client" and each link between non-client parties ("server -> key holder")."""
    seconds: dict[str, dict[str, float]] = {}
    sizes: dict[str, dict[str, float]] = {}
    for rep in round_dict["reports"]:
        cost, layer = rep["cost"], rep["layer"]
        for party, value in {"clients": cost["client_seconds_mean"], "server": cost["server_seconds"], **cost.get("party_seconds", {})}.items():
            seconds.setdefault(party, {})[layer] = float(value)
        for link, value in {"up a client": cost["bytes_up_mean"], "down a client": cost["bytes_down_mean"], **cost.get("bytes_between", {})}.items():
            sizes.setdefault(link, {})[layer] = float(value)
    return seconds, sizes


def mean_costs(rounds: list[dict], which: int | None = None) -> tuple[dict, dict, str]:
    """`party_costs` of round `which`, or their mean over the completed rounds (aborted ones have no
    reports and are left out), and a label saying which.

    Raises:
        ValueError: if round `which` is absent or aborted.
    """
    completed = [r for r in rounds if not r.get("aborted")]
    if which is not None:
        chosen = [r for r in completed if r["round"] == which]
        if not chosen:
            raise ValueError(f"--round {which}: no completed round {which} (completed: {[r['round'] for r in completed]})")
        completed, label = chosen, f"round {which}"
    else:
        label = f"mean of {len(completed)} completed rounds"
    totals: tuple[dict, dict] = ({}, {})
    for rnd in completed:
        for total, part in zip(totals, party_costs(rnd)):
            for key, layers in part.items():
                for layer, value in layers.items():
                    total.setdefault(key, {}).setdefault(layer, 0.0)
                    total[key][layer] += value / len(completed)
    return totals[0], totals[1], label


def summary(rounds: list[dict], config) -> dict:
    """The top of result.json: final accuracy, the cumulative epsilon (at `delta`), the rule's f, the
    attackers a round, and the mean cost a completed round of each party (CPU seconds, bytes)."""
    completed = [r for r in rounds if not r.get("aborted")]
    last = completed[-1] if completed else None
    f = next((rep["guarantee"]["parameters"]["f"] for rep in last["reports"] if "f" in rep["guarantee"]["parameters"]), 0) if last else None
    seconds, sizes, _ = mean_costs(rounds)
    return {
        "final_accuracy": rounds[-1]["accuracy"] if rounds else None,
        "rounds_completed": len(completed),
        "rounds_aborted": len(rounds) - len(completed),
        "epsilon": rounds[-1]["cumulative_epsilon"] if rounds else None,  # the released model's
        "epsilon_by_observer": {name: obs["epsilon"] for name, obs in rounds[-1]["epsilon_by_observer"].items()} if rounds else {},
        "delta": config.delta,
        "f": f,
        "attackers_per_round": config.attackers_per_round,
        "seconds_per_round": {party: sum(layers.values()) for party, layers in seconds.items()},
        "bytes_per_round": {link: sum(layers.values()) for link, layers in sizes.items()},
    }


def layer_reports(round_dict: dict) -> tuple[LayerReport, ...]:
    """The LayerReports of one saved round, rebuilt from result.json."""
    reports = []
    for rep in round_dict["reports"]:
        g = dict(rep["guarantee"])
        g["threat_model"] = ThreatModel[g["threat_model"]]
        mech = g.get("dp_mechanism")
        g["dp_mechanism"] = _MECHANISMS[mech.pop("type")](**mech) if mech else None
        g["epsilon"] = math.inf if g.get("epsilon") == "inf" else g.get("epsilon")
        reports.append(LayerReport(rep["layer"], Cost(**rep["cost"]), Guarantee(**g)))
    return tuple(reports)


def _last_completed(data: dict) -> dict | None:
    """The last round that did not abort (aborted rounds have no reports)."""
    return next((r for r in reversed(data["rounds"]) if not r.get("aborted")), None)


def render(data: dict) -> str:
    """Markdown: the per-round metrics, then the last round's per-layer report."""
    lines = [f"# Experiment: {data['config']['stack']} on {data['config']['data']} ({data['config']['model']})", ""]
    if data["interrupted"]:
        lines += ["Interrupted: the rounds below are the ones that completed.", ""]
    observers = list(data["rounds"][-1].get("epsilon_by_observer", {})) if data["rounds"] else []
    lines += ["| round | accuracy | loss | included | epsilon (round) | " + " | ".join(f"epsilon: {o}" for o in observers) + " |",
              "|---|---|---|---|---|" + "---|" * len(observers)]
    for r in data["rounds"]:
        eps = "-" if r["epsilon"] is None else f"{float(r['epsilon']):.3g}"
        by = [f"{float(r['epsilon_by_observer'][o]['epsilon']):.3g}" if o in r.get("epsilon_by_observer", {}) else "-" for o in observers]
        included = f"aborted: {r['aborted']}" if r.get("aborted") else len(r["included"])
        lines.append(f"| {r['round']} | {r['accuracy']:.4f} | {r['loss']:.4f} | {included} | {eps} | " + " | ".join(by) + " |")
    if observers:
        lines += ["", f"Cumulative epsilon by observer after round {data['rounds'][-1]['round']} (epsilon (round): this round's noise "
                  "against an observer of the aggregate):"]
        for name, o in data["rounds"][-1]["epsilon_by_observer"].items():
            lines.append(f"- **{name}**: epsilon = {float(o['epsilon']):.4g} at delta = {o['delta']:g}; {o['bound']}; {o['assumptions']}")
    completed = _last_completed(data)
    if completed is not None:
        lines += ["", f"## Per-layer report of round {completed['round']}", "", format_reports(layer_reports(completed))]
    return "\n".join(lines) + "\n"


def epsilon_series(data: dict) -> dict[str, list[float]]:
    """Each observer's cumulative epsilon a round, as result.json has it (nan where infinite or missing), for the
    observers whose epsilon is finite in some round: the lines of epsilon.png."""
    def number(r: dict, name: str) -> float:
        value = r.get("epsilon_by_observer", {}).get(name, {}).get("epsilon", "inf")
        return math.nan if value == "inf" else float(value)

    names = list(data["rounds"][-1].get("epsilon_by_observer", {})) if data["rounds"] else []
    series = {name: [number(r, name) for r in data["rounds"]] for name in names}
    return {name: values for name, values in series.items() if not all(math.isnan(v) for v in values)}


def import_plotting() -> None:
    """Imports matplotlib (Agg) in a background thread (about 0.6 s), for a run that plots when it ends: the import
    then runs while the run waits on its training workers, and `plot` finds it done."""
    def load() -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot

    threading.Thread(target=load, daemon=True).start()


def plot(data: dict, folder: Path) -> list[Path]:
    """accuracy.png (accuracy and loss), epsilon.png (each observer's cumulative epsilon, when one is finite) and
    cost.png (`plot_cost`: by party and link, the mean of the completed rounds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r["round"] for r in data["rounds"]]
    written = []
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(8, 3.2))
    ax.plot(rounds, [r["accuracy"] for r in data["rounds"]], marker="o", label=data["config"]["stack"])
    ax.set(xlabel="round", ylabel="test accuracy", title="accuracy per round")
    ax.legend()
    ax_loss.plot(rounds, [r["loss"] for r in data["rounds"]], marker="o")
    ax_loss.set(xlabel="round", ylabel="test loss", title="loss per round")
    fig.tight_layout()
    fig.savefig(folder / "accuracy.png", dpi=100)
    written.append(folder / "accuracy.png")
    plt.close(fig)
    series = epsilon_series(data)
    if series:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for name, values in series.items():
            ax.plot(rounds, values, marker="o", label=name)
        ax.set(xlabel="round", ylabel=f"epsilon at delta={data['config']['delta']:g}", title=f"cumulative epsilon by observer: {data['config']['stack']}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "epsilon.png", dpi=100)
        written.append(folder / "epsilon.png")
        plt.close(fig)
    if _last_completed(data) is not None:
        written.append(plot_cost(data, folder))
    return written


def plot_cost(data: dict, folder: Path, which: int | None = None) -> Path:
    """cost.png: one bar a party (CPU seconds: clients' mean, server, second server, dealer, key holder)
    and one bar a link (bytes up and down a client, bytes between non-client parties), each stacked by
    layer, for round `which` or the mean of the completed rounds (the title says which)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds, sizes, label = mean_costs(data["rounds"], which)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, costs, unit, by in zip(axes, (seconds, sizes), ("CPU seconds", "bytes"), ("party", "link")):
        names = list(costs)
        layers = list(dict.fromkeys(layer for per in costs.values() for layer in per))
        bottom = np.zeros(len(names))
        for layer in layers:
            heights = np.array([costs[n].get(layer, 0.0) for n in names])
            ax.bar(names, heights, bottom=bottom, label=layer)
            bottom += heights
        ax.set(ylabel=f"{unit} a round", title=f"{unit} by {by}, {label}")
        ax.tick_params(axis="x", labelrotation=20, labelsize=7)
    axes[0].legend(fontsize=7, title="layer", title_fontsize=7)
    fig.suptitle(f"{data['config']['stack']} on {data['config']['data']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / "cost.png", dpi=100)
    plt.close(fig)
    return folder / "cost.png"


def save(result: ExperimentResult, folder: Path, provenance: dict | None = None, *, plots: bool = True) -> Path:
    """Writes result.json (with `provenance`), report.md and (with `plots`) the plots into `folder` (created);
    returns the folder. `fl.run_commands.run` calls it on a temporary folder that replaces nothing until it
    is complete; `secagg report` draws the plots of a folder saved without them."""
    folder.mkdir(parents=True, exist_ok=True)
    data = to_dict(result, provenance)
    (folder / "result.json").write_text(json.dumps(data, indent=1))
    (folder / "report.md").write_text(render(data))
    if plots:
        plot(data, folder)
    return folder


RESULT_KEYS = {"config": dict, "interrupted": bool, "rounds": list}


def load_saved(folder: Path) -> dict:
    """The dict of a saved result.json.

    Raises:
        FileNotFoundError: naming the path, if absent.
        ValueError: naming the file and the key, if it is not JSON or lacks config, interrupted or rounds.
    """
    path = Path(folder) / "result.json"
    if not path.is_file():
        raise FileNotFoundError(f"no result.json in {folder}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    for key, kind in RESULT_KEYS.items():
        if not isinstance(data.get(key), kind):
            raise ValueError(f"{path}: not a saved result: key {key!r} must be a {kind.__name__}, found {data.get(key)!r}")
    return data


def stack_label(config: dict) -> str:
    """"robust/krum" for a stack with a rule, else the stack's name."""
    return config["stack"] + (f"/{config['rule']}" if config["stack"] in STACK_RULES else "")


def plot_comparison(results: list[dict], folder: Path) -> Path:
    """compare.png: accuracy and cumulative epsilon per round, one line a stack; CPU seconds a round by
    party and bytes a round by link (mean over completed rounds), one group of bars a stack."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((ax, ax_eps), (ax_s, ax_b)) = plt.subplots(2, 2, figsize=(10, 6.4))
    costs = []
    for i, data in enumerate(results):
        rounds = [r["round"] for r in data["rounds"]]
        label = stack_label(data["config"])
        ax.plot(rounds, [r["accuracy"] for r in data["rounds"]], marker=".", color=f"C{i}", label=label)
        if any(r["cumulative_epsilon"] is not None for r in data["rounds"]):
            ax_eps.plot(rounds, [float(r["cumulative_epsilon"]) if r["cumulative_epsilon"] is not None else np.nan for r in data["rounds"]],
                        marker=".", color=f"C{i}", label=label)
        seconds, sizes, _ = mean_costs(data["rounds"])
        costs.append(({k: sum(v.values()) for k, v in seconds.items()}, {k: sum(v.values()) for k, v in sizes.items()}))
    ax.set(xlabel="round", ylabel="test accuracy", title="accuracy per round")
    ax_eps.set(xlabel="round", ylabel=f"epsilon at delta={results[0]['config']['delta']:g}" if results else "epsilon", title="cumulative epsilon (stacks with DP noise)")
    for axis, index, unit, by in ((ax_s, 0, "CPU seconds a round", "party"), (ax_b, 1, "bytes a round", "link")):
        keys = list(dict.fromkeys(k for c in costs for k in c[index]))
        width = 0.8 / max(len(results), 1)
        for j, (data, c) in enumerate(zip(results, costs)):
            axis.bar(np.arange(len(keys)) + j * width, [c[index].get(k, 0.0) for k in keys], width, color=f"C{j}", label=stack_label(data["config"]))
        axis.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys, rotation=20, fontsize=7)
        axis.set(ylabel=unit, title=f"{unit} by {by} (mean of completed rounds)")
    ax_b.set_yscale("log", nonpositive="clip")  # bytes a client and bytes between servers differ by orders of magnitude
    ax.legend(fontsize=7)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / "compare.png", dpi=100)
    plt.close(fig)
    return folder / "compare.png"
