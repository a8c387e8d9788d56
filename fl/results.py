"""Saving, loading and rendering experiment results: a folder per run with result.json, report.md and plots."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from pathlib import Path

import numpy as np

from fl.experiment import ExperimentResult
from protocols import accounting
from protocols.report import Cost, Guarantee, LayerReport, ThreatModel, format_reports

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


def to_dict(result: ExperimentResult) -> dict:
    return {"config": _plain(result.config), "interrupted": result.interrupted, "epsilon_by_observer": _plain(result.epsilon_by_observer),
            "rounds": [_plain(r) for r in result.rounds]}


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


def plot(data: dict, folder: Path) -> list[Path]:
    """accuracy.png (accuracy and loss), epsilon.png (each observer's cumulative epsilon, when one is finite) and cost.png (per-layer time and
    bytes, last round)."""
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
        reports = _last_completed(data)["reports"]
        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
        bottom_t, bottom_b = 0.0, 0.0
        for rep in reports:
            t = rep["cost"]["client_seconds_mean"] + rep["cost"]["server_seconds"]
            b = rep["cost"]["bytes_up_mean"] + rep["cost"]["bytes_down_mean"]
            left.bar(["time"], [t], bottom=[bottom_t], label=rep["layer"])
            right.bar(["bytes"], [b], bottom=[bottom_b], label=rep["layer"])
            bottom_t, bottom_b = bottom_t + t, bottom_b + b
        left.set(ylabel="CPU s (client mean + server)", title="per-layer time")
        right.set(ylabel="bytes per client (up + down)", title="per-layer bytes")
        right.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "cost.png", dpi=100)
        written.append(folder / "cost.png")
        plt.close(fig)
    return written


def save(result: ExperimentResult, folder: Path) -> Path:
    """Writes result.json, report.md and the plots into `folder` (created); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    data = to_dict(result)
    (folder / "result.json").write_text(json.dumps(data, indent=1))
    (folder / "report.md").write_text(render(data))
    plot(data, folder)
    return folder


def load_saved(folder: Path) -> dict:
    """The dict of a saved result.json (raises FileNotFoundError with the path if absent)."""
    path = Path(folder) / "result.json"
    if not path.exists():
        raise FileNotFoundError(f"no result.json in {folder}")
    return json.loads(path.read_text())


def plot_comparison(results: list[dict], folder: Path) -> Path:
    """compare.png: accuracy and loss per round, one line a stack."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(8, 3.2))
    for data in results:
        rounds = [r["round"] for r in data["rounds"]]
        label = data["config"]["stack"] + ("/" + data["config"]["rule"] if data["config"]["stack"] == "robust" else "")
        ax.plot(rounds, [r["accuracy"] for r in data["rounds"]], label=label)
        ax_loss.plot(rounds, [r["loss"] for r in data["rounds"]], label=label)
    ax.set(xlabel="round", ylabel="test accuracy", title="accuracy per round")
    ax_loss.set(xlabel="round", ylabel="test loss", title="loss per round")
    ax.legend(fontsize=7)
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / "compare.png", dpi=100)
    plt.close(fig)
    return folder / "compare.png"
