"""Long-term client identities: each client's Ed25519 signing key and the directory of every client's
verification key, provisioned out of band (a PKI), so that no party takes a client's key from the server.

    provision(folder, clients)   folder/keys/<id>.pem    client <id>'s private key (PKCS#8 PEM, mode 0600),
                                                         for its node alone
                                 folder/clients/<id>.pub its public key (SubjectPublicKeyInfo PEM): the
                                                         directory every verifier reads (`KeyDirectory.read`)
                                 folder/keys/key-holder.pem  the HE key holder's signing key, for its node alone
                                 folder/key-holder.pub   its public key, for every client node (`provision_key_holder`)
                                 folder/keys/second-server.pem, folder/second-server.pub   the two-server stack's S1
                                 folder/keys/dealer.pem, folder/dealer.pub                 and dealer (`provision_party`)

A round's participants are a roster: position u -> client id in [0, 2**32) (ids are signed as u32; positions are
what messages name). A verifier maps position u to `directory.key(roster[u])` and refuses a roster of another
length than the round's, one that lists an id twice or an id it has no key for; a key folder names each id once
(canonical decimal file names) and holds each key once; so every signature it accepts is a distinct provisioned
key holder's. `KeyDirectory.simulated()` is a simulation's stand-in: key i is derived from i alone, publicly, so
anyone can sign as any client; a guarantee that rests on it says so (`source`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from protocols.core.errors import Refused
from secagg.randomness import Randomness, SystemRandomness
from secagg.signatures import Signer, public_from_pem, public_pem

ID_LIMIT = 2**32  # client ids are u32 in every signed message (`roster_digest`, `simulated_signer`)
SIMULATED = "simulated (each key derived publicly from the client id: anyone can sign as any client; a simulation only)"


def simulated_signer(cid: int) -> Signer:
    """Client `cid`'s simulated signing key: Ed25519 seed SHA-256("secagg/simulated-client-key" | u32 cid). Public: a simulation only."""
    return Signer.from_private_bytes(hashlib.sha256(b"secagg/simulated-client-key" + struct.pack(">I", cid)).digest())


@functools.lru_cache(maxsize=1 << 16)
def _simulated_public(cid: int) -> bytes:
    """Client `cid`'s simulated verification key, derived once (a simulated directory is asked once a signed message)."""
    return simulated_signer(cid).public_bytes()


def simulated_key_holder_signer() -> Signer:
    """The simulated key holder's signing key: Ed25519 seed SHA-256("secagg/simulated-key-holder"). Public: a simulation only."""
    return Signer.from_private_bytes(hashlib.sha256(b"secagg/simulated-key-holder").digest())


def load_signer(key_file: str | Path) -> Signer:
    """The Ed25519 signing key in a PEM file (`provision`).

    Raises:
        ValueError: naming the file, if it is missing, unreadable, encrypted or holds no Ed25519 PEM key.
    """
    try:
        return Signer.from_pem(Path(key_file).read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"signing key file {str(key_file)!r}: {exc}") from None


def load_public_key(key_file: str | Path) -> bytes:
    """The 32-byte Ed25519 verification key in a PEM file (`provision`).

    Raises:
        ValueError: naming the file, if it is missing, unreadable or holds no Ed25519 PEM public key.
    """
    try:
        return public_from_pem(Path(key_file).read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"public key file {str(key_file)!r}: {exc}") from None



def configured_key(node_config: Mapping, name: str, load, *, party: str, missing: str):
    """`load(path)` of the file a node's own config names under `name` (`load_signer` or `load_public_key`).

    Raises:
        Refused: naming `name`: `missing` (why the node needs it) if the config has none, or the file's problem.
    """
    if not node_config.get(name):
        raise Refused(f"the {party} node's config has no {name}: {missing}", party=party, stage="setup")
    try:
        return load(str(node_config[name]))
    except ValueError as exc:
        raise Refused(f"{name}: {exc}", party=party, stage="setup") from None

@dataclass(frozen=True)
class KeyDirectory:
    """Client id -> 32-byte Ed25519 verification key; `source` names where the keys came from (a folder, or
    `SIMULATED`, whose keys are derived on demand)."""

    keys: Mapping[int, bytes] = field(default_factory=dict)
    source: str = SIMULATED

    @property
    def simulated(self) -> bool:
        return self.source == SIMULATED

    @classmethod
    def read(cls, folder: str | Path) -> "KeyDirectory":
        """The directory in `folder` (a provisioned folder, or its `clients/`): one `<id>.pub` file a client.

        Raises:
            ValueError: naming the folder if it is missing or empty, a file that is not a readable `<id>.pub` with an
                Ed25519 PEM key (id: canonical decimal below 2**32, so no two names for one id), or files holding one key.
        """
        path = Path(folder)
        if (path / "clients").is_dir():
            path = path / "clients"
        if not path.is_dir():
            raise ValueError(f"client key directory {str(path)!r} is not a folder")
        keys, files = {}, {}
        for file in sorted(path.iterdir()):
            stem = file.name.removesuffix(".pub")
            if not file.name.endswith(".pub") or not _canonical_id(stem):
                raise ValueError(f"client key directory {str(path)!r}: {file.name!r} is not <client id>.pub "
                                 f"(the id in canonical decimal, below 2**32)")
            try:
                keys[int(stem)] = public_from_pem(file.read_bytes())
            except (OSError, ValueError) as exc:  # a folder or an unreadable file named like a key, or no Ed25519 key
                raise ValueError(f"client key file {str(file)!r}: {exc}") from None
            files[int(stem)] = file.name
        if not keys:
            raise ValueError(f"client key directory {str(path)!r} holds no <client id>.pub file")
        holders: dict[bytes, list[int]] = {}
        for cid, key in keys.items():
            holders.setdefault(key, []).append(cid)
        shared = next((ids for ids in holders.values() if len(ids) > 1), None)
        if shared is not None:  # one key holder would sign as several clients, counted as several
            raise ValueError(f"client key directory {str(path)!r}: {', '.join(files[c] for c in shared)} hold the same key")
        return cls(keys, str(path))

    def key(self, cid: int, *, party: str = "verifier", stage: str = "setup") -> bytes:
        """Client `cid`'s verification key.

        Raises:
            Refused: naming the id, if it is not an int in [0, 2**32) or the directory has no key for it.
        """
        if not _is_id(cid):
            raise Refused(f"client id {str(cid)[:24]} is not an int in [0, 2**32)", party=party, stage=stage)
        if self.simulated:
            return _simulated_public(cid)
        if cid not in self.keys:
            raise Refused(f"client id {cid} has no key in the directory {self.source}", party=party, stage=stage)
        return self.keys[cid]

    def for_roster(self, roster: Sequence[int], n: int | None = None, *, party: str = "verifier", stage: str = "setup") -> list[bytes]:
        """The verification key of each position of `roster` (position u -> client roster[u]), a round of `n`
        positions (None: any length). Linear in len(roster): the length is checked first, repeats counted once.

        Raises:
            Refused: naming the roster, if it is not a list of n ids in [0, 2**32), lists an id twice, or names one without a key.
        """
        if not isinstance(roster, (list, tuple)):
            raise Refused(f"roster {str(roster)[:60]} is not a list of client ids", party=party, stage=stage)
        if n is not None and len(roster) != n:
            raise Refused(f"roster of {len(roster)} clients for a round of n={n}", party=party, stage=stage)
        bad = next((u for u, c in enumerate(roster) if not _is_id(c)), None)
        if bad is not None:
            raise Refused(f"roster {str(roster[:12])[:60]} is not a list of client ids: entry {bad} = {str(roster[bad])[:24]} is not "
                          f"an int in [0, 2**32)", party=party, stage=stage)
        twice = sorted(c for c, times in Counter(roster).items() if times > 1)
        if twice:
            raise Refused(f"roster lists clients {str(twice)[:60]} more than once", party=party, stage=stage)
        return [self.key(c, party=party, stage=stage) for c in roster]


def _is_id(c: object) -> bool:
    """A client id: an int (not a bool) in [0, 2**32)."""
    return type(c) is int and 0 <= c < ID_LIMIT


def _canonical_id(text: str) -> bool:
    """`text` is a client id in canonical decimal: ASCII digits, no leading zero (but "0"), below 2**32."""
    return text.isascii() and text.isdigit() and (text == "0" or text[0] != "0") and int(text) < ID_LIMIT


@dataclass(frozen=True)
class ClientIdentity:
    """One client's long-term identity: its id in the directory, its signing key and the directory it verifies peers with.

    Raises:
        ValueError: naming the id, if the signing key is not the directory's key for it.
    """

    cid: int
    signer: Signer
    directory: KeyDirectory

    def __post_init__(self) -> None:
        if self.signer.public_bytes() != self.directory.key(self.cid, party=f"client {self.cid}"):
            raise ValueError(f"the signing key of client {self.cid} is not the directory's key for it ({self.directory.source})")

    @classmethod
    def simulated(cls, cid: int) -> "ClientIdentity":
        return cls(cid, simulated_signer(cid), KeyDirectory())

    @classmethod
    def load(cls, cid: int, key_file: str | Path, directory: str | Path) -> "ClientIdentity":
        """Client `cid`'s identity from its private key file and the public-key directory (see `provision`).

        Raises:
            ValueError: naming the file, if it is missing or holds no Ed25519 PEM key (and see `KeyDirectory.read`).
        """
        return cls(cid, load_signer(key_file), KeyDirectory.read(directory))


def roster_digest(roster: Sequence[int]) -> bytes:
    """SHA-256 binding a round's roster (position -> client id) into every signature made under it."""
    return hashlib.sha256(b"secagg/roster" + struct.pack(f">I{len(roster)}I", len(roster), *roster)).digest()


def provision(folder: str | Path, clients: int, rng: Randomness | None = None) -> KeyDirectory:
    """Writes `clients` fresh identities (keys from `rng`, default the OS CSPRNG) into `folder` (see the module docstring).

    Raises:
        ValueError: if clients < 1, or if `folder` already holds keys (never overwritten).
    """
    if clients < 1:
        raise ValueError(f"clients must be >= 1, found {clients}")
    root = Path(folder)
    if (root / "keys").exists() or (root / "clients").exists():
        raise ValueError(f"{str(root)!r} already holds keys/ or clients/; refusing to overwrite identities")
    (root / "keys").mkdir(parents=True)
    (root / "clients").mkdir()
    rng = rng or SystemRandomness()
    for c in range(clients):
        signer = Signer.from_private_bytes(rng.bytes(32))
        fd = os.open(root / "keys" / f"{c}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(signer.private_pem())
        (root / "clients" / f"{c}.pub").write_bytes(public_pem(signer.public_bytes()))
    for party in ("key-holder", "second-server", "dealer"):
        provision_party(root, party, rng)
    return KeyDirectory.read(root)


def provision_party(folder: str | Path, party: str, rng: Randomness | None = None) -> Path:
    """Writes the identity of `party` into `folder`: keys/<party>.pem (private, mode 0600, never overwritten) and
    <party>.pub (its public key, which the nodes that verify it pin); returns the .pub path."""
    root = Path(folder)
    (root / "keys").mkdir(parents=True, exist_ok=True)
    signer = Signer.from_private_bytes((rng or SystemRandomness()).bytes(32))
    fd = os.open(root / "keys" / f"{party}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(signer.private_pem())
    (root / f"{party}.pub").write_bytes(public_pem(signer.public_bytes()))
    return root / f"{party}.pub"


def provision_key_holder(folder: str | Path, rng: Randomness | None = None) -> Path:
    """Writes the HE key holder's identity into `folder` (`provision_party` "key-holder"): every client node pins key-holder.pub."""
    return provision_party(folder, "key-holder", rng)
