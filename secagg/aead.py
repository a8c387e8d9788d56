"""AES-256-GCM for the Shamir shares that clients relay to each other through the server.

ciphertext = nonce (12 B) || AES-GCM(key, nonce, plaintext, associated_data) (plaintext + 16 B tag).
The associated data binds sender, recipient and round, so the server cannot redirect or replay a
share. Nonces are random (96 bits), which is safe for the few messages a key encrypts.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag as _CryptographyInvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from secagg.errors import InvalidTag
from secagg.randomness import Randomness

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = NONCE_BYTES + TAG_BYTES


class AuthenticatedCipher:
    """AES-256-GCM under one 32-byte key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"key must be {KEY_BYTES} bytes, found {len(key)}")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, associated_data: bytes, *, rng: Randomness) -> bytes:
        nonce = rng.bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, ciphertext: bytes, associated_data: bytes) -> bytes:
        """Raises InvalidTag for any tampering, truncation or wrong associated data."""
        if len(ciphertext) < OVERHEAD:
            raise InvalidTag(f"ciphertext shorter than {OVERHEAD} bytes")
        try:
            return self._aead.decrypt(ciphertext[:NONCE_BYTES], ciphertext[NONCE_BYTES:], associated_data)
        except _CryptographyInvalidTag as exc:
            raise InvalidTag("authentication failed") from exc
