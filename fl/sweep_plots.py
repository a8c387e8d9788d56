"""The plots of a sweep folder: the trilemma heatmap (mean accuracy over the noise field x the Byzantine
field, each cell with its mean epsilon), accuracy against epsilon (one line a value of the
other fields, 95% intervals as error bars), and cost a round against the number of clients."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NOISE_FIELDS = ("noise_multiplier", "clip", "mechanism", "stack")  # the privacy axis, in order of preference
ATTACK_FIELDS = ("byzantine", "attackers", "attack", "rule", "mistaken")  # the robustness axis


def _axis(grid: list[str], preferred: tuple[str, ...], other: str | None = None) -> str | None:
    return next((f for f in preferred if f in grid and f != other), next((f for f in grid if f != other), None))


def _mean(cells: list[dict], metric: str) -> float:
    values = [c["metrics"][metric]["mean"] for c in cells if c["metrics"][metric]["mean"] is not None]
    return float(np.mean(values)) if values else float("nan")


def plot_sweep(data: dict, folder: Path) -> list[Path]:
    """Writes trilemma.png, accuracy_epsilon.png (when some run has an epsilon) and cost_clients.png (when
    `clients` is swept) into `folder`; fields outside the two axes are averaged over (the titles say so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = data["spec"]["grid"]
    cells = [c for c in data["cells"] if c["runs"]]
    if not cells:
        return []
    x_field = _axis(list(grid), NOISE_FIELDS)
    y_field = _axis(list(grid), ATTACK_FIELDS, x_field)
    rest = [f for f in grid if f not in (x_field, y_field)]
    xs, ys = grid[x_field], grid[y_field] if y_field else [None]
    written = []

    def where(x, y):
        return [c for c in cells if str(c["fields"][x_field]) == str(x) and (y_field is None or str(c["fields"][y_field]) == str(y))]

    accuracy = np.array([[_mean(where(x, y), "final_accuracy") for x in xs] for y in ys])
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(xs), 1.4 + 0.9 * len(ys)))
    image = ax.imshow(accuracy, cmap="viridis", origin="lower", aspect="auto")
    epsilon = np.array([[_mean(where(x, y), "epsilon") for x in xs] for y in ys])
    middle = np.nanmean(accuracy) if np.isfinite(accuracy).any() else 0.0
    for (i, j), value in np.ndenumerate(accuracy):
        text = "-" if np.isnan(value) else f"{value:.3f}" + ("" if np.isnan(epsilon[i, j]) else f"\neps {epsilon[i, j]:.3g}")
        ax.text(j, i, text, ha="center", va="center", color="k" if value > middle else "w", fontsize=8)
    ax.set_xticks(range(len(xs)), [str(x) for x in xs], fontsize=7)
    ax.set_yticks(range(len(ys)), [str(y) for y in ys], fontsize=7)
    seeds = data["spec"]["seeds"]
    ax.set(xlabel=x_field, ylabel=y_field or "", title=f"final accuracy and epsilon, mean of {seeds} seeds" + (f"\n(averaged over {', '.join(rest)})" if rest else ""))
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(folder / "trilemma.png", dpi=100)
    plt.close(fig)
    written.append(folder / "trilemma.png")
    if any(c["metrics"]["epsilon"]["mean"] is not None for c in cells):
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        groups: dict[tuple, list[dict]] = {}  # one line a combination of the fields other than x
        for c in cells:
            if c["metrics"]["epsilon"]["mean"] is not None:
                groups.setdefault(tuple((k, str(v)) for k, v in c["fields"].items() if k != x_field), []).append(c)
        for key, line in groups.items():
            acc = [c["metrics"]["final_accuracy"] for c in line]
            err = [[a["mean"] - a["ci95"][0] if a["ci95"] else 0 for a in acc], [a["ci95"][1] - a["mean"] if a["ci95"] else 0 for a in acc]]
            ax.errorbar([c["metrics"]["epsilon"]["mean"] for c in line], [a["mean"] for a in acc], yerr=err, marker="o", capsize=3,
                        label=", ".join(f"{k}={v}" for k, v in key) or None)
        ax.set(xlabel=f"cumulative epsilon (mean over seeds; {x_field} varies)", ylabel="final accuracy", title="accuracy against epsilon (95% intervals)")
        if any(groups):
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "accuracy_epsilon.png", dpi=100)
        plt.close(fig)
        written.append(folder / "accuracy_epsilon.png")
    if "clients" in grid:
        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
        for x in grid["clients"]:
            runs = [r["summary"] for c in cells if str(c["fields"]["clients"]) == str(x) for r in c["runs"]]
            left.scatter([float(x)] * len(runs), [r["seconds_per_round"].get("server", 0.0) for r in runs], color="C0")
            right.scatter([float(x)] * len(runs), [r["bytes_per_round"].get("up a client", 0.0) for r in runs], color="C1")
        left.set(xlabel="clients", ylabel="server CPU s a round", title="server cost against n")
        right.set(xlabel="clients", ylabel="bytes up a client a round", title="client bytes against n")
        fig.tight_layout()
        fig.savefig(folder / "cost_clients.png", dpi=100)
        plt.close(fig)
        written.append(folder / "cost_clients.png")
    return written
