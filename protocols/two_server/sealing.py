"""Sealed messages to the second server S1, which the first server S0 relays but cannot read or alter.

    sealed = E (32) || nonce (12) || AES-256-GCM(k, nonce, frame, ad) (frame + 16 B tag)
    k      = HKDF-SHA256(X25519(e, S1's public key), info = "two-server/seal/" E || S1's key || ad)
    ad     = session (8) || sender (4) || S1 (4) || kind (1) || index (4)

e is a fresh X25519 key of the sender (a client, or the dealer), E its public key. `ad` binds the round's
session, the sender S0 relays it for, the message kind and (dealer) the batch index: a ciphertext S0
alters, truncates, replays under another sender, kind, index or round, or swaps between senders fails
authentication at S1 (`MalformedMessage`). What it does not stop, alone: S0 sealing a message of its own under a
sender's name, or handing clients its own key in place of S1's. Both are stopped above this module (`identities`):
a pinned client (on Flower, always) and the dealer seal only to a key S1 signed, and the dealer's batches and each
client's sealed share are signed with the sender's long-term key, which S1 checks before opening.
"""

from __future__ import annotations

import struct

from protocols.core.errors import MalformedMessage
from protocols.core.wire import SECOND_SERVER
from secagg.aead import OVERHEAD, AuthenticatedCipher
from secagg.agreement import KEY_BYTES, X25519Agreement
from secagg.errors import InvalidTag
from secagg.randomness import Randomness

SEALED_OVERHEAD = KEY_BYTES + OVERHEAD  # bytes a sealed message adds to its frame


def associated_data(session: bytes, sender: int, kind: int, index: int = 0) -> bytes:
    return session + struct.pack(">IIBI", sender, SECOND_SERVER, kind, index)


def _info(ephemeral: bytes, recipient: bytes, ad: bytes) -> bytes:
    return b"two-server/seal/" + ephemeral + recipient + ad


def seal(recipient: bytes, frame: bytes, ad: bytes, rng: Randomness) -> bytes:
    """`frame` sealed to the holder of the X25519 public key `recipient` (32 bytes), bound to `ad`.

    Raises:
        ValueError: if `recipient` is not a usable X25519 public key.
    """
    ephemeral = X25519Agreement.generate(rng)
    try:
        key = ephemeral.shared_seed(recipient, _info(ephemeral.public_bytes(), recipient, ad))
    except InvalidTag as exc:
        raise ValueError(f"the second server's public key is not a usable X25519 key: {exc}") from exc
    return ephemeral.public_bytes() + AuthenticatedCipher(key).encrypt(frame, ad, rng=rng)


def unseal(own: X25519Agreement, sealed: bytes, ad: bytes, *, party: str, stage: str) -> bytes:
    """The frame inside `sealed`, if it was sealed to `own` under `ad`.

    Raises:
        MalformedMessage: (naming `party`, the claimed sender) if it is short or fails authentication.
    """
    if len(sealed) < SEALED_OVERHEAD:
        raise MalformedMessage(f"sealed message shorter than {SEALED_OVERHEAD} bytes", party=party, stage=stage)
    try:
        key = own.shared_seed(sealed[:KEY_BYTES], _info(sealed[:KEY_BYTES], own.public_bytes(), ad))
        return AuthenticatedCipher(key).decrypt(sealed[KEY_BYTES:], ad)
    except InvalidTag as exc:
        raise MalformedMessage(f"sealed message to the second server failed authentication ({exc})", party=party, stage=stage) from exc
