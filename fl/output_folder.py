"""Results folders that are never lost: a run writes into a temporary sibling of its folder and moves it
into place only at the end, so an interrupted or failed run leaves any earlier result as it was."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


class OutputExists(ValueError):
    """The results folder already exists (from an earlier run) and --force was not given."""


class OutputFolder:
    """The destination `path` of one run, checked when made (before the first round). An empty folder
    counts as free: it holds nothing to lose.

    Write into `tmp` (a hidden sibling on the same file system), then `commit()`: a rename, atomic on POSIX.
    With `force`, an existing folder is first renamed aside and removed only once the new one is in place.

    Raises:
        OutputExists: if `path` exists and `force` is false.
        ValueError: if `path` exists and is not a folder (even with `force`).
    """

    def __init__(self, path: Path, *, force: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"--out {self.path}: is a file, not a results folder")
        if self._occupied() and not force:
            raise OutputExists(f"--out {self.path}: a results folder already exists there; choose another --out, or --force to replace it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))

    def _occupied(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def commit(self) -> Path:
        """Moves `tmp` to `path` (replacing what is there, which --force allowed); returns `path`."""
        old = None
        if self.path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".old", dir=self.path.parent))
            os.rename(self.path, old / self.path.name)
        try:
            os.rename(self.tmp, self.path)
        except OSError:
            if old is not None:  # put the earlier result back
                os.rename(old / self.path.name, self.path)
                old.rmdir()
            raise
        if old is not None:
            shutil.rmtree(old)
        return self.path

    def commit_beside(self, label: str) -> Path:
        """Moves `tmp` to `path` if nothing is there, else to the first free sibling `<name>-<label>[-k]`
        (an interrupted run never replaces an earlier result, even under --force); returns where."""
        if not self._occupied():
            return self.commit()
        k = 1
        while (target := self.path.with_name(f"{self.path.name}-{label}" + (f"-{k}" if k > 1 else ""))).exists():
            k += 1
        os.rename(self.tmp, target)
        return target

    def discard(self) -> None:
        """Removes `tmp` (a failed run): `path` stays as it was."""
        shutil.rmtree(self.tmp, ignore_errors=True)
