"""The key holder's signature of the public CKKS context it hands the aggregator to forward to the clients.

A client encrypts only under a context its key holder signed: Ed25519 over
    "secagg/he-public-context" | run id (decimal) | "|" | SHA-256(serialized public context),
verified with the key holder's public key from the client's own configuration (on Flower its node config
`he-key-holder-key`, provisioned by `secagg keys`), never with a key the aggregator sends. An aggregator that
forwards a context of its own key set is refused before any input is encrypted.
"""

from __future__ import annotations

import hashlib

from protocols.core.errors import Refused
from secagg.errors import InvalidTag
from secagg.signatures import Signer, verify


def context_message(run: int, public: bytes) -> bytes:
    """What the key holder signs for the public context `public` of run `run`."""
    return b"secagg/he-public-context" + str(int(run)).encode() + b"|" + hashlib.sha256(public).digest()


def sign_context(signer: Signer, run: int, public: bytes) -> bytes:
    return signer.sign(context_message(run, public))


def check_context(key: bytes, run: int, public: bytes, signature: bytes, *, party: str = "client") -> None:
    """Raises Refused unless `signature` is the key holder's (verification key `key`) over `public` in run `run`."""
    try:
        verify(key, bytes(signature), context_message(run, bytes(public)))
    except InvalidTag:
        raise Refused(f"the public context (sha256 {hashlib.sha256(bytes(public)).hexdigest()[:16]}...) is not signed by the key holder "
                      f"for run {run}: refusing to encrypt under it", party=party, stage="setup") from None
