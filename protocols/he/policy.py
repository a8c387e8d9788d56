"""The key holder's own policy and its ledger of releases: configuration the key holder is set up
with, never a parameter of a request or of the aggregator.

A policy declares the one kind of round its key holder serves and what each kind may ask:

    sum     one SUM a round                       (CKKSAggregation, BFVAggregation)
    hidden  one MODEL a round                     (HiddenStateCKKS)
    robust  one SCALARS, then one SELECTED_SUM    (CKKSRobust: the key holder recomputes the distances
                                                   and selects with its own rule, f, m and norm_bound)

Every release lists at least `min_clients` signed inputs (a selected sum too: Krum, which releases
one client's input, needs a policy with min_clients = 1). A session is 8 bytes whose first 4 are the
round number (big-endian; `session_of`), so the round is bound into every client's signature. The
ledger records, per (run, round), the session it was opened under, what was released and, in robust
rounds, the digests of the ciphertexts SCALARS validated; it is plain JSON, so a key holder that
restarts, or a Flower node that rebuilds its key holder for each message, reloads it: a new session id
cannot reopen a round, a session opened under one run cannot be opened under another (client
signatures bind the session, not the run), and rounds of a run only go forward (an old session, with
its old signatures, cannot come back in a later round). The ledger is one key holder's: its guarantees
need one ledger per key set, updated by one request at a time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from protocols.core.errors import Refused
from protocols.core.pki import KeyDirectory
from protocols.he.messages import Target

ROUND_KINDS: dict[str, tuple[Target, ...]] = {
    "sum": (Target.SUM,),
    "hidden": (Target.MODEL,),
    "robust": (Target.SCALARS, Target.SELECTED_SUM),
}
RULES = ("krum", "multi_krum")
PARTY, STAGE = "key holder", "decrypt"


@dataclass(frozen=True)
class KeyHolderPolicy:
    """What one key holder releases. `flood_bits`: CKKS releases carry noise of 2**flood_bits times
    the error bound; `recompute`: sums are the key holder's own sums of the signed inputs (robust
    rounds always recompute; without it the key holder decrypts the aggregator's sum, so min_clients
    holds only against an aggregator that adds honestly); `rule`, `f`, `m` (default: accepted inputs - f), `norm_bound` (L2):
    the robust selection the key holder makes and checks; `bits` (BFV): a BFV release is the sum reduced mod
    2**bits, in [0, 2**bits), the ring sum and no more (the integer sum would count each coordinate's negative
    inputs)."""

    round_type: str = "sum"
    min_clients: int = 2
    recompute: bool = True
    flood_bits: int = 10
    rule: str = "multi_krum"
    f: int = 1
    m: int | None = None
    norm_bound: float = 1.0
    bits: int = 32

    def __post_init__(self) -> None:
        if self.round_type not in ROUND_KINDS:
            raise ValueError(f"round_type must be one of {sorted(ROUND_KINDS)}, found {self.round_type!r}")
        if self.min_clients < 1:
            raise ValueError(f"min_clients must be >= 1, found {self.min_clients}")
        if not 0 <= self.flood_bits <= 40:
            raise ValueError(f"flood_bits must be in [0, 40], found {self.flood_bits}")
        if self.rule not in RULES or self.f < 0 or not self.norm_bound > 0 or (self.m is not None and self.m < 1):
            raise ValueError(f"need rule in {RULES}, f >= 0, m >= 1, norm_bound > 0; found {self.rule!r}, {self.f}, {self.m}, {self.norm_bound}")
        if not 2 <= self.bits <= 62:
            raise ValueError(f"bits must be in [2, 62], found {self.bits}")
        if self.round_type == "robust" and self.rule == "krum" and self.min_clients > 1:
            raise ValueError(f"krum releases one client's input: min_clients must be 1, found {self.min_clients}")
        if self.round_type == "robust" and self.m is not None and self.m < self.min_clients:
            raise ValueError(f"m = {self.m} selects fewer than min_clients = {self.min_clients}: every selected sum would be refused")
        if self.round_type == "robust" and not self.recompute:
            raise ValueError("robust rounds need recompute=True: distances are released only as the key holder computes them")

    def check_headroom(self, headroom_bits: int) -> None:
        """Robust rounds: squared distances between accepted inputs (norm <= 1.01 norm_bound, the key holder's norm
        check), up to (2.02 norm_bound)**2, must stay below the CKKS headroom 2**headroom_bits, else they wrap and
        a wrapped norm can pass the norm check: norm_bound >= sqrt(2**headroom_bits) / 2.02 (358.45 at ckks-8192) is
        refused. A Byzantine input whose squared norm wraps decrypts (heuristically: the secret scale r makes it
        uniform over the headroom) into the accepted range with probability about norm_bound**2 / 2**(headroom_bits + 1) a round."""
        if self.round_type == "robust" and (2.02 * self.norm_bound) ** 2 >= 2.0**headroom_bits:
            raise ValueError(f"norm_bound {self.norm_bound}: (2.02 norm_bound)**2 must be below 2**{headroom_bits}, the CKKS headroom of "
                             f"this preset (norm_bound < {2.0 ** (headroom_bits / 2) / 2.02:.2f})")

    def check_asked(self, asked: Mapping) -> None:
        """Refuses an aggregator that runs another round than this policy serves: `asked` (untrusted, only
        compared, never adopted) names its round type, min_clients, flood_bits and recompute (from which its
        report states numeric_error, release_noise_std and dropout_tolerance: a key holder that floods more or
        needs more inputs would make that report understate them) and, for robust rounds, its rule, f, m and
        norm_bound, for sum rounds the ring's bits.

        Raises:
            Refused: naming the first field whose value differs, the aggregator's and the policy's.
        """
        common = ("round_type", "min_clients", "flood_bits", "recompute")
        fields = common + (("rule", "f", "m", "norm_bound") if self.round_type == "robust" else ("bits",))
        for name in fields:
            if name in asked and asked[name] != getattr(self, name):
                raise Refused(f"the aggregator runs {name}={asked[name]!r}, this key holder's policy has {name}={getattr(self, name)!r}",
                              party=PARTY, stage=STAGE)

    @property
    def allowed(self) -> tuple[Target, ...]:
        return ROUND_KINDS[self.round_type]

    def selected_count(self, accepted: int) -> int:
        """How many inputs the rule selects among `accepted` ones."""
        return 1 if self.rule == "krum" else (self.m or accepted - self.f)

    # the policy's keys, and the key holder's own PKI (`client_keys_from_config`)
    NODE_CONFIG_KEYS = ("he-round-type", "he-min-clients", "he-recompute", "he-flood-bits", "he-rule", "he-f", "he-m", "he-norm-bound",
                        "he-bits", "he-client-keys", "he-ledger-file")

    @classmethod
    def from_config(cls, config: Mapping) -> KeyHolderPolicy:
        """From a node configuration (e.g. Flower's --node-config): keys `he-round-type`, `he-min-clients`,
        `he-recompute`, `he-flood-bits`, `he-rule`, `he-f`, `he-m`, `he-norm-bound`, `he-bits`; a missing key takes the
        safe default above."""
        get = config.get
        m = get("he-m")
        return cls(
            round_type=str(get("he-round-type", "sum")), min_clients=int(get("he-min-clients", 2)),
            recompute=str(get("he-recompute", "true")).lower() in ("1", "true", "yes"), flood_bits=int(get("he-flood-bits", 10)),
            rule=str(get("he-rule", "multi_krum")), f=int(get("he-f", 1)), m=None if m in (None, "", 0) else int(m),
            norm_bound=float(get("he-norm-bound", 1.0)), bits=int(get("he-bits", 32)),
        )


def client_keys_from_config(config: Mapping) -> KeyDirectory | None:
    """The key holder's own PKI from its node configuration: `he-client-keys`, a folder of client public keys
    (`protocols.core.pki.provision` writes one; `KeyDirectory.read`) or, inline, a JSON object client id ->
    Ed25519 public key (hex), provisioned out of band; None when the key is absent.

    Raises:
        ValueError: naming the value, if it is neither a readable key folder nor such an object.
    """
    text = config.get("he-client-keys")
    if text in (None, ""):
        return None
    text = str(text)
    if not text.lstrip().startswith("{"):
        try:
            return KeyDirectory.read(text)
        except ValueError as exc:
            raise ValueError(f"he-client-keys: {exc}") from None
    try:
        return KeyDirectory({int(u): bytes.fromhex(k) for u, k in json.loads(text).items()}, "he-client-keys (inline)")
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"he-client-keys must be a key folder or a JSON object of client id -> hex key, found {text[:40]!r}: {exc}") from None


def session_of(round_: int, nonce: bytes) -> bytes:
    """The session id of a round: u32 round | 4 nonce bytes."""
    if not 0 <= round_ < 2**32 or len(nonce) != 4:
        raise ValueError(f"round must be a u32 and the nonce 4 bytes, found {round_}, {len(nonce)} bytes")
    return round_.to_bytes(4, "big") + nonce


@dataclass
class ReleaseLedger:
    """Per (run, round): the session, the targets released, and the selection a robust round allows
    with the hex sha256 of each validated input (`digests`, client id -> digest)."""

    rounds: dict[str, dict] = field(default_factory=dict)

    @staticmethod
    def _key(run: str, round_: int) -> str:
        return f"{run}/{round_}"

    def open(self, run: str, session: bytes) -> tuple[int, dict]:
        """(round, entry) for `session`, the round read from its first 4 bytes; refuses a second session
        for a round and a round older than the run's latest."""
        if len(session) != 8:
            raise Refused(f"session of {len(session)} bytes, expected 8", party=PARTY, stage=STAGE)
        round_ = int.from_bytes(session[:4], "big")
        key = self._key(run, round_)
        entry = self.rounds.get(key)
        if any(k != key and e["session"] == session.hex() for k, e in self.rounds.items()):
            raise Refused(f"session {session.hex()} was opened under another run or round", party=PARTY, stage=STAGE)
        if entry is not None:
            if entry["session"] != session.hex():
                raise Refused(f"round {round_} of run {run} was opened under another session", party=PARTY, stage=STAGE)
            return round_, entry
        if any(int(k.rsplit("/", 1)[1]) > round_ for k in self.rounds if k.rsplit("/", 1)[0] == run):
            raise Refused(f"round {round_} is older than a round run {run} already opened", party=PARTY, stage=STAGE)
        return round_, {"session": session.hex(), "released": [], "selection": None, "digests": {}}

    def record(self, run: str, round_: int, entry: dict) -> None:
        self.rounds[self._key(run, round_)] = entry

    def to_json(self) -> str:
        return json.dumps(self.rounds, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReleaseLedger:
        return cls(json.loads(text) if text else {})
