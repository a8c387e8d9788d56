"""Where a result came from: package versions, the git commit, the command line, start and end time,
the machine, and the seeds that drove the run."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime
from importlib import metadata
from pathlib import Path

PACKAGES = ("secagg-fl", "numpy", "torch", "tenseal", "cryptography", "dp-accounting", "matplotlib")
FLOWER = "flwr"  # recorded when a Flower engine ran


def versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """{distribution: installed version, or None if it is not installed}."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(root: Path | None = None) -> dict | None:
    """{"commit": HEAD, "dirty": uncommitted changes} of the source tree `root` (default: this package's
    checkout), or None when `root` is not the top of a git work tree (an installed copy) or git is absent."""
    root = Path(root or Path(__file__).resolve().parents[1])

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root.resolve():
            return None
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "machine": platform.machine(), "python": platform.python_version()}


def provenance(*, command: list[str], started: datetime, ended: datetime, seeds: dict[str, int], engine: str, stack: list[dict] | None = None) -> dict:
    """The provenance block of result.json; times are ISO 8601 in UTC, `seconds` the wall time between them;
    `stack`: the layer specs as given, outermost first."""
    return {
        "command": list(command),
        "started": started.isoformat(timespec="seconds"),
        "ended": ended.isoformat(timespec="seconds"),
        "seconds": round((ended - started).total_seconds(), 3),
        "packages": versions(PACKAGES + ((FLOWER,) if engine != "in-process" else ())),
        "git": git_commit(),
        "machine": machine(),
        "seeds": dict(seeds),
        **({"stack": list(stack)} if stack is not None else {}),
    }
