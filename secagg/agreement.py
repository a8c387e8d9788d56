"""X25519 key agreement with HKDF-SHA256 (RFC 7748, RFC 5869).

Low level: the caller chooses `context`. Most callers want `protocols.masking.secagg`, which binds the
round, stage and both party ids into it. Private keys come from a `Randomness` (the OS CSPRNG
in production), so simulations can be reproduced.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from secagg.errors import InvalidTag
from secagg.prg import derive
from secagg.randomness import Randomness

KEY_BYTES = 32


_PROBE = X25519PrivateKey.from_private_bytes(bytes([1]) * KEY_BYTES)  # a fixed scalar, public: it only tests points


def is_low_order(public: bytes) -> bool:
    """Whether `public` (32 bytes) is a point of X25519's small subgroup (order dividing 8, in any encoding, e.g. 0 or
    p): X25519 of it and every private key is the all-zero secret, which `shared_seed` refuses. One exchange with a fixed
    scalar decides it, since every clamped scalar is a multiple of the cofactor 8. A point with a small component beside
    a large one is not low order: clamping removes that component, and peers agree on its large part."""
    try:
        _PROBE.exchange(X25519PublicKey.from_public_bytes(bytes(public)))
    except ValueError:  # the all-zero result
        return True
    return False


class X25519Agreement:
    """One X25519 key pair; `shared_seed` = HKDF-SHA256(X25519(own secret, peer public), info=context)."""

    def __init__(self, private_key: X25519PrivateKey) -> None:
        self._private = private_key

    @classmethod
    def generate(cls, rng: Randomness) -> "X25519Agreement":
        return cls.from_private_bytes(rng.bytes(KEY_BYTES))

    @classmethod
    def from_private_bytes(cls, data: bytes) -> "X25519Agreement":
        if len(data) != KEY_BYTES:
            raise ValueError(f"an X25519 private key is {KEY_BYTES} bytes, found {len(data)}")
        return cls(X25519PrivateKey.from_private_bytes(data))

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key (what SecAgg secret-shares for dropout recovery)."""
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def shared_seed(self, peer_public: bytes, context: bytes) -> bytes:
        """A 32-byte seed both parties derive alike (`peer_public` any bytes-like object, e.g. a view into a frame).

        Raises:
            InvalidTag: if `peer_public` is not 32 bytes or is a low-order point (all-zero secret).
        """
        if len(peer_public) != KEY_BYTES:
            raise InvalidTag(f"an X25519 public key is {KEY_BYTES} bytes, found {len(peer_public)}")
        try:
            secret = self._private.exchange(X25519PublicKey.from_public_bytes(bytes(peer_public)))
        except ValueError as exc:  # low-order point: cryptography refuses the all-zero result
            raise InvalidTag("peer public key is a low-order point") from exc
        return derive(secret, b"secagg/x25519/" + context)
