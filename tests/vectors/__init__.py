"""Known-answer vectors; each text file's header names its source. The binary files
he-ckks-8192-sum-segfault-*.bin are regression vectors of our own fuzz (tests/protocols/he_fuzz.py):
bit-flipped CKKS vectors (ckks-8192-sum, length 10) whose chunk parses to zero ciphertexts, which
segfaulted TenSEAL in add_ before `secagg.he` checked every chunk."""

from pathlib import Path


def load(name: str) -> dict[str, bytes]:
    """Reads `key = hex` lines of tests/vectors/<name>, skipping comments."""
    out = {}
    for line in (Path(__file__).parent / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = bytes.fromhex(value.strip())
    return out
