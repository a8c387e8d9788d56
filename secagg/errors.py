"""Errors raised on purpose by the cryptographic building blocks.

Each class has one meaning. A caller's mistake (bad size, bad parameter) raises the built-in
`ValueError`/`TypeError` naming the argument; these classes are for cryptographic failures.
"""


class SecAggError(Exception):
    """Base class of every error this toolkit raises on purpose."""


class AlreadyUsed(SecAggError):
    """A one-shot object (key pair, mask seed, PRG stream, client round) was used twice."""


class InvalidTag(SecAggError):
    """An authenticated ciphertext or a signature failed to verify (forged, corrupted or wrong key)."""


class InconsistentShares(SecAggError):
    """A set of Shamir shares does not lie on one polynomial of the declared degree."""


class MalformedCiphertext(SecAggError):
    """Untrusted bytes did not parse as a ciphertext (or context) of the expected parameters."""
