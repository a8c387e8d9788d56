"""Ed25519 signatures (RFC 8032), used by SecAgg against an active adversary (ConsistencyCheck)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from secagg.errors import InvalidTag
from secagg.randomness import Randomness

PUBLIC_BYTES = 32
SIGNATURE_BYTES = 64


class Signer:
    """An Ed25519 signing key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key

    @classmethod
    def generate(cls, rng: Randomness) -> "Signer":
        return cls(Ed25519PrivateKey.from_private_bytes(rng.bytes(32)))

    def public_bytes(self) -> bytes:
        return self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        """A 64-byte signature."""
        return self._private.sign(message)


def verify(public: bytes, signature: bytes, message: bytes) -> None:
    """Raises InvalidTag unless `signature` is a valid Ed25519 signature of `message` under `public`."""
    if len(public) != PUBLIC_BYTES or len(signature) != SIGNATURE_BYTES:
        raise InvalidTag("malformed Ed25519 key or signature")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise InvalidTag("signature does not verify") from exc
