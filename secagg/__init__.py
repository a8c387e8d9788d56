"""Floor 1: cryptographic building blocks (hazmat). Every security parameter is explicit here;
most callers want the recipes in `protocols` instead."""

from secagg.aead import AuthenticatedCipher
from secagg.agreement import X25519Agreement
from secagg.encoding import FixedPoint
from secagg.errors import AlreadyUsed, InconsistentShares, InvalidTag, MalformedCiphertext, SecAggError
from secagg.he import EncryptedVector, HeContext
from secagg.he_params import PRESETS, HeParameters, preset
from secagg.prg import AesCtrPrg, derive
from secagg.randomness import Randomness, SeededRandomness, SystemRandomness
from secagg.ring import Ring
from secagg.signatures import Signer, verify

__all__ = [
    "AesCtrPrg",
    "AlreadyUsed",
    "AuthenticatedCipher",
    "EncryptedVector",
    "FixedPoint",
    "HeContext",
    "HeParameters",
    "InconsistentShares",
    "InvalidTag",
    "MalformedCiphertext",
    "PRESETS",
    "Randomness",
    "Ring",
    "SecAggError",
    "SeededRandomness",
    "Signer",
    "SystemRandomness",
    "X25519Agreement",
    "derive",
    "preset",
    "verify",
]
