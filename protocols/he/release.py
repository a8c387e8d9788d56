"""The hidden-state model's release to the clients only: the key holder seals the decrypted model to each
client under X25519 + AES-256-GCM, and the aggregator, which relays the boxes, cannot open them.

    client i:    box key B_i (X25519, from its own randomness); signs ("he-box" | session | i | B_i)
                 with its Ed25519 key                                               -> aggregator -> key holder
    key holder:  verifies every signature under its PKI (a bad one refuses the request); draws E (X25519)
                 from its own CSPRNG; box_i = AES-GCM(HKDF(X25519(E, B_i), "he-model" | session | i),
                 model as PLAINTEXT, associated data session | i)
                 reply: blob(Enc(w), re-encrypted) | E (32 B) | u32 m | m x (u32 i, blob(box_i))
    aggregator:  adopts Enc(w); relays E | box_i to client i                        -> client i opens it

Confidentiality against the aggregator needs the key holder to know each client's signing key from its
own PKI (on Flower: `he-client-keys`): with keys the aggregator relays, it can announce a client of its own
and receive the model. E is not authenticated: a client cannot tell the key holder's box from one the
aggregator made for it, so the integrity of the model a client trains on is not given.
"""

from __future__ import annotations

import numpy as np

from protocols.core.wire import Reader, Writer
from protocols.he.messages import encode_plaintext, parse_plaintext
from secagg.aead import OVERHEAD, AuthenticatedCipher
from secagg.agreement import KEY_BYTES, X25519Agreement, is_low_order
from secagg.randomness import Randomness
from secagg.signatures import SIGNATURE_BYTES


def box_key_message(session: bytes, client: int, public: bytes) -> bytes:
    """What client `client` signs for its box key `public` in round `session`."""
    return b"he-box" + session + client.to_bytes(4, "big") + public


def _context(session: bytes, client: int) -> bytes:
    return b"he-model" + session + client.to_bytes(4, "big")


def encode_box_keys(keys: dict[int, tuple[bytes, bytes]]) -> bytes:
    """u32 m | m x (u32 client, box key (32 B), signature (64 B)), clients ascending."""
    return Writer().entries({u: pub + sig for u, (pub, sig) in keys.items()}).getvalue()


def parse_box_keys(data: bytes, n: int, *, party: str, stage: str) -> dict[int, tuple[bytes, bytes]]:
    """The announced box keys of clients < n (ascending, distinct), as `encode_box_keys` wrote them."""
    r = Reader(data, party=party, stage=stage)
    keys = r.entries(KEY_BYTES + SIGNATURE_BYTES, n, n)
    r.done()
    return {u: (item[:KEY_BYTES], item[KEY_BYTES:]) for u, item in keys.items()}


def usable_box_key(public: bytes) -> bool:
    """Whether `public` is a box key the key holder can seal to: 32 bytes, not of low order (an exchange with it would be
    the all-zero secret, which `shared_seed` refuses)."""
    return len(public) == KEY_BYTES and not is_low_order(public)


def seal_model(values: np.ndarray, session: bytes, recipients: dict[int, bytes], rng: Randomness) -> tuple[bytes, dict[int, bytes]]:
    """(E, {client: box}): the released model sealed to each recipient's box key (see the module docstring)."""
    ephemeral = X25519Agreement.generate(rng)
    plaintext = encode_plaintext(values)
    boxes = {u: AuthenticatedCipher(ephemeral.shared_seed(key, _context(session, u))).encrypt(plaintext, session + u.to_bytes(4, "big"), rng=rng)
             for u, key in recipients.items()}
    return ephemeral.public_bytes(), boxes


def box_bytes(d: int) -> int:
    """Size of one box of d values: the PLAINTEXT payload (4 + 8 d) and AES-GCM's nonce and tag."""
    return 4 + 8 * d + OVERHEAD


def encode_model_release(refreshed: bytes, ephemeral: bytes, boxes: dict[int, bytes]) -> bytes:
    return Writer().blob(refreshed).raw(ephemeral).entries(boxes).getvalue()


def parse_model_release(data: bytes, n: int, d: int, max_bytes: int, *, party: str, stage: str) -> tuple[bytes, dict[int, bytes]]:
    """(re-encrypted model, {client: E | box}) from a key holder's MODEL reply; each box holds d float64 values."""
    r = Reader(data, party=party, stage=stage)
    refreshed, ephemeral = r.blob(max_bytes), r.raw(KEY_BYTES)
    boxes = r.entries(box_bytes(d), n, n)
    r.done()
    return refreshed, {u: ephemeral + box for u, box in boxes.items()}


def open_box(agreement: X25519Agreement, session: bytes, client: int, delivered: bytes, d: int, *, party: str, stage: str) -> np.ndarray:
    """The model in client `client`'s box (E | box, as the aggregator relays it).

    Raises:
        InvalidTag: if the box was altered, is for another client or round, or E is not a valid key.
    """
    key = agreement.shared_seed(delivered[:KEY_BYTES], _context(session, client))
    plaintext = AuthenticatedCipher(key).decrypt(delivered[KEY_BYTES:], session + client.to_bytes(4, "big"))
    return parse_plaintext(Reader(plaintext, party=party, stage=stage), d)
