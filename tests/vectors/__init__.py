"""Known-answer vectors; each file's header names its source."""

from pathlib import Path


def load(name: str) -> dict[str, bytes]:
    """Reads `key = hex` lines of tests/vectors/<name>, skipping comments."""
    out = {}
    for line in (Path(__file__).parent / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = bytes.fromhex(value.strip())
    return out
