"""Ed25519 signatures (RFC 8032), used by SecAgg against an active adversary (ConsistencyCheck)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

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

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> "Signer":
        """From a 32-byte Ed25519 seed (RFC 8032 private key)."""
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def from_pem(cls, data: bytes) -> "Signer":
        """From an unencrypted PKCS#8 PEM file's bytes.

        Raises:
            ValueError: if `data` is no PEM Ed25519 private key, or an encrypted one (cryptography raises TypeError).
        """
        try:
            key = load_pem_private_key(data, password=None)
        except TypeError as exc:  # password-protected PEM: no password is ever asked for
            raise ValueError(f"PEM private key is not usable without a password: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"PEM private key is {type(key).__name__}, not Ed25519")
        return cls(key)

    def private_pem(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM (keep the file private: mode 0600)."""
        return self._private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())

    def public_bytes(self) -> bytes:
        return self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def sign(self, message: bytes) -> bytes:
        """A 64-byte signature."""
        return self._private.sign(message)


def public_pem(public: bytes) -> bytes:
    """A 32-byte Ed25519 public key as SubjectPublicKeyInfo PEM."""
    return Ed25519PublicKey.from_public_bytes(public).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def public_from_pem(data: bytes) -> bytes:
    """The 32 raw bytes of a SubjectPublicKeyInfo PEM Ed25519 public key.

    Raises:
        ValueError: if `data` is no PEM Ed25519 public key.
    """
    key = load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"PEM public key is {type(key).__name__}, not Ed25519")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def verify(public: bytes, signature: bytes, message: bytes) -> None:
    """Raises InvalidTag unless `signature` is a valid Ed25519 signature of `message` under `public`."""
    if len(public) != PUBLIC_BYTES or len(signature) != SIGNATURE_BYTES:
        raise InvalidTag("malformed Ed25519 key or signature")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError) as exc:
        raise InvalidTag("signature does not verify") from exc
