"""Aggregation under homomorphic encryption: clients encrypt with a public key, an aggregator (the
server) collects and adds, a key holder that must not collude with it decrypts.

    key holder: generates keys; the public context (public + relinearization keys) reaches clients
    client i:   encrypt x_i (CKKS floats, or BFV integers), sign sha256(ciphertext)    -> aggregator
    aggregator: sum_i Enc(x_i) (or relay the signed inputs)                            -> key holder
    key holder: check the signed manifest (and recompute), decrypt, round + flood      -> aggregator

TenSEAL has no threshold decryption, so privacy rests on the key holder and the aggregator not
colluding, and on every client's ciphertext being honestly generated (a Byzantine client can make a
release expose the secret key, see `protocols.he.key_holder`); every `LayerReport` says so. Any number of clients may drop (no pairwise masks): the
round needs only `min_clients` inputs. Keys are generated once per protocol object (the key
holder's setup) and their sizes are reported, not counted in per-round bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from protocols.core.clear import ClearClient, ClearServer
from protocols.core.driver import CostMeter
from protocols.core.errors import BelowThreshold, MalformedMessage, Refused
from protocols.core.messages import Kind
from protocols.core.pki import ClientIdentity, KeyDirectory
from protocols.core.protocol import OpenRound, Protocol, RoundEnd
from protocols.core.report import Guarantee, LayerReport, Output, ThreatModel
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.stack import Field, StackContext, StackError, Traits, register
from protocols.core.transport import InProcessTransport
from protocols.core.wire import KEY_HOLDER, SERVER, Frame, Reader, decode_frame, encode_frame, hex_bytes
from protocols.he.key_holder import HONEST_CIPHERTEXTS, TRUSTED_SUM, KeyHolder
from protocols.he.messages import DecryptRequest, Target, digest, encode_ciphertext, parse_ciphertext, parse_plaintext, signed_message
from protocols.he.policy import KeyHolderPolicy, ReleaseLedger, session_of
from secagg.errors import InvalidTag, MalformedCiphertext
from secagg.he import (
    EncryptedVector,
    HeContext,
    batching_modulus,
    bfv_sum_fits,
    ckks_encodable,
    ckks_headroom,
    fresh_error_bound,
    rerandomized_total,
)
from secagg.he_params import HeParameters, preset
from secagg.randomness import Randomness
from secagg.ring import Ring
from secagg.signatures import Signer, verify

STAGE = Stage.MASKED_INPUT.name


def signed_reply(cid: int, n: int, session: bytes, encrypt: Callable[[], bytes], signer: Signer) -> Callable[[], bytes]:
    """The CIPHERTEXT payload of client `cid` of a round announced as `n` clients, made when the request arrives: its
    ciphertext and an Ed25519 signature of (session, cid, n, its digest)."""

    def reply() -> bytes:
        ct = encrypt()
        return encode_ciphertext(ct, signer.sign(signed_message(session, cid, n, digest(ct))))

    return reply


def he_client(cid: int, n: int, session: bytes, encrypt: Callable[[], bytes], signer: Signer) -> ClearClient:
    """A client that answers the request with its signed ciphertext (`signed_reply`)."""
    return ClearClient(cid, Kind.CIPHERTEXT, signed_reply(cid, n, session, encrypt, signer), session)


def ciphertext_limit(params: HeParameters, d: int) -> int:
    """Most bytes an honest `EncryptedVector` of d values takes under `params` (a parser's length limit)."""
    return 8 + -(-d // params.slots) * (4 + 2 * len(params.coeff_mod_bit_sizes) * params.poly_modulus_degree * 8 + 4096)


def announced(public: dict, client: int, d: int) -> tuple[bytes, int]:
    """The session and the number of clients n the aggregator announces in its (untrusted) public parameters, checked:
    the session 8 bytes of hex, d the client's own row length, n an int in [1, 2**32) (a client's headroom check
    divides by it, and the client signs it with its ciphertext, so the key holder refuses inputs checked against an n
    below its round's: review 17; a missing n was read as 1; review 18: a malformed session or d raised bare errors).

    Raises:
        Refused: by `client`, naming the field and the value found.
    """
    party = f"client {client}"
    if not isinstance(public, dict):
        raise Refused(f"the round's public parameters announce nothing: a {type(public).__name__}, not a mapping", party=party, stage="encrypt")
    n, session, length = (int(v) if isinstance(v, np.integer) else v for v in (public.get("n"), public.get("session"), public.get("d")))
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n < 2**32:
        raise Refused(f"the round's public parameters announce no client count n in [1, 2**32) (found {_described(n)})", party=party, stage="encrypt")
    raw = hex_bytes(session, 8)
    if raw is None:
        raise Refused(f"the round's public parameters announce no session of 8 bytes in hex (found {_described(session)})", party=party, stage="encrypt")
    if not isinstance(length, int) or isinstance(length, bool) or length != d:
        raise Refused(f"the round's public parameters announce d = {_described(length)}, this client's row has {d}", party=party, stage="encrypt")
    return raw, n


def _described(value: object) -> str:
    """An untrusted value for an error message: short ints and strings shown, anything else by type (and bit length)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return repr(value) if value.bit_length() <= 64 else f"an int of {value.bit_length()} bits"
    if isinstance(value, str):
        return repr(value[:40])
    return f"a {type(value).__name__}"


class HeCollector(ClearServer):
    """The aggregator's collection stage: one signed ciphertext a client. A ciphertext whose signature
    fails or that does not parse under the public context is rejected at once (the client is left
    out), so one bad client cannot make the key holder refuse the whole round."""

    def __init__(self, n: int, session: bytes, public: HeContext, d: int, client_keys: dict[int, bytes]) -> None:
        limit = ciphertext_limit(public.params, d)
        super().__init__(n, session, Kind.CIPHERTEXT, lambda r: parse_ciphertext(r, limit), self._take)
        self._public, self._d, self._keys = public, d, client_keys
        self.inputs: dict[int, tuple[bytes, bytes]] = {}
        self.vectors: dict[int, EncryptedVector] = {}
        self._digests: dict[int, bytes] = {}

    def _take(self, link: int, signed: tuple[bytes, bytes]) -> None:
        ct, sig = signed
        h = digest(ct)
        try:
            verify(self._keys.get(link, b""), sig, signed_message(self._session, link, self._n, h))
            self.vectors[link] = EncryptedVector.from_bytes(self._public, ct, length=self._d)
        except (InvalidTag, MalformedCiphertext) as exc:
            raise MalformedMessage(f"ciphertext of client {link} rejected: {exc}", party="server", stage=STAGE) from None
        self.inputs[link] = (ct, sig)
        self._digests[link] = h

    def manifest(self) -> dict[int, tuple[bytes, bytes]]:
        return {u: (self._digests[u], sig) for u, (_, sig) in self.inputs.items()}

    def total(self) -> EncryptedVector:
        """The sum of the collected vectors, accumulated in place onto a fresh encryption of zero (no copy)."""
        return rerandomized_total(self._public, [self.vectors[u] for u in sorted(self.vectors)])


@dataclass
class HeKeys:
    """The key holder's key set, and the public context clients and aggregator parse (once)."""

    secret: HeContext | None  # None where only the public context is known (clients, a remote key holder's aggregator)
    public: HeContext
    public_bytes: int

    @classmethod
    def generate(cls, params: HeParameters, *, galois: bool = False) -> HeKeys:
        secret = HeContext.generate(params, galois=galois)
        wire = secret.to_bytes()  # without the secret key: no public copy first (0.2 s CPU with Galois keys at ckks-8192)
        return cls(secret, HeContext.from_bytes(params, wire), len(wire))


@dataclass
class HeRound:
    """One round at the aggregator: its size, session, collector, the clients' verification keys by position
    (from the seated directory), the roster (position u is client roster[u]), the directory's `source`, and
    what each client's role announced (`client_role`'s measurements under the protocol's name)."""

    n: int
    d: int
    session: bytes
    collector: HeCollector
    client_keys: dict[int, bytes]
    roster: list[int] = field(default_factory=list)
    source: str = ""
    announced: dict[int, dict] = field(default_factory=dict)

    def params(self, protocol: HeAggregation) -> dict:
        """What the aggregator tells the key holder (JSON-ready): session, length, roster and what it runs
        ("asks", which the key holder compares with its policy and never adopts); no policy, no seed, no key:
        a key holder verifies position u's signatures with its own directory's key of roster[u]."""
        return {"session": self.session.hex(), "length": self.d, "roster": list(self.roster), "asks": protocol.asks()}


@dataclass
class HeAggregation(Protocol):
    """Sum under CKKS (float inputs) or BFV (ring inputs) with a non-colluding key holder.

    `min_clients`: the aggregator asks for sums of at least this many signed inputs.
    `recompute`: the aggregator relays the signed inputs (the key holder adds them itself); otherwise
    it sends its own sum with the manifest, and min_clients holds only against an honest aggregator.
    `flood_bits`: CKKS releases carry noise of 2**flood_bits times the error bound.
    `holder_policy`: the in-process key holder's own configuration (default: the policy these fields
    describe, as a simulation sets up both parties from one experiment); the aggregator never sends it.
    """

    preset: str = "ckks-8192-sum"
    min_clients: int = 2
    recompute: bool = True
    flood_bits: int = 10
    bits: int = 32  # BFV: inputs are elements of Z_{2^bits}
    name: str = "he"
    holder_policy: KeyHolderPolicy | None = None
    _keys: HeKeys | None = field(default=None, repr=False, compare=False)
    _ledger: ReleaseLedger = field(default_factory=ReleaseLedger, repr=False, compare=False)  # the in-process key holder's memory
    _round: int = field(default=0, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.params = preset(self.preset)
        if self.scheme is not None and self.params.scheme != self.scheme:
            raise ValueError(f"{type(self).__name__} needs a {self.scheme.upper()} preset, found {self.preset!r}")
        self.policy  # validates min_clients, flood_bits (and a robust rule's fields) as the key holder will

    @property
    def keys(self) -> HeKeys:
        if self._keys is None:
            self._keys = HeKeys.generate(self.params, galois=self.needs_galois)
        return self._keys

    needs_galois = False
    scheme: ClassVar[str | None] = None  # the scheme a subclass's presets must use
    round_type: ClassVar[str] = "sum"  # what its key holder's policy serves (`protocols.he.policy.ROUND_KINDS`)

    @property
    def policy(self) -> KeyHolderPolicy:
        """The in-process key holder's policy: `holder_policy`, or the one this protocol's fields describe."""
        return self.holder_policy or KeyHolderPolicy(self.round_type, self.min_clients, self.recompute, self.flood_bits, **self._rule_policy())

    def _rule_policy(self) -> dict:
        """The policy fields this round type adds (BFV: the ring's `bits`, to which the key holder reduces the sum)."""
        return {"bits": self.bits} if self.params.scheme == "bfv" else {}

    def asks(self) -> dict:
        """The round this aggregator runs, as its key holder's policy must serve it (`KeyHolderPolicy.check_asked`)."""
        p = self.policy
        return {"round_type": self.round_type, "min_clients": p.min_clients, "flood_bits": p.flood_bits, "recompute": p.recompute, **self._rule_policy()}

    def check_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """The inputs as the scheme encrypts them: float64 (CKKS) or int64 (BFV, ring elements)."""
        if not isinstance(inputs, np.ndarray) or inputs.ndim != 2 or inputs.shape[1] < 1:
            raise TypeError("inputs must be an array of shape (n, d)")
        if self.params.scheme == "ckks":
            if not np.issubdtype(inputs.dtype, np.floating) or not np.all(np.isfinite(inputs)):
                raise TypeError("CKKS inputs must be finite floats")
            for i, row in enumerate(inputs):  # what each client's own check (`client_role`) would refuse
                self.check_encoding(inputs.shape[0], row, i)
            return inputs.astype(np.float64)
        Ring(self.bits).check(inputs, "inputs")
        t = self.keys.public.plain_modulus
        if not bfv_sum_fits(inputs.shape[0], self.bits, t):
            raise ValueError(f"n * (2**{self.bits} - 1) overflows half the BFV plain modulus {t}; use fewer bits or the 16384 preset")
        return inputs.astype(np.int64)

    @property
    def input_weight(self) -> float:
        """What a client multiplies its row by before encrypting it (hidden state: `weight`)."""
        return 1.0

    def check_encoding(self, n: int, row: np.ndarray, client: int) -> None:
        """CKKS sums: an honest client's own headroom check. With each of the n clients of the round within
        n x |weight| x max |row| + (n + 2) x error bound < `secagg.he.ckks_headroom` (2**19 at ckks-8192-sum), the sum of
        their encodings (each coefficient at most its slots' max |value|) cannot wrap; and |weight| x max |row| + error
        bound < `secagg.he.ckks_encodable` (2**18 at ckks-8192-sum), what SEAL encodes at all (binding there only for
        n = 1). Robust rounds check only the latter: their sums are bounded by the key holder's norm check instead; the
        hidden model's own part, by the key holder (`KeyHolder`).

        Raises:
            Refused: by `client`, naming n, max |row| and the bound, if the sum could wrap or the row cannot be encoded (a
                ProtocolError: the round aborts typed, and an experiment records it as aborted).
        """
        if self.params.scheme != "ckks":
            return
        top, error = abs(self.input_weight) * float(np.max(np.abs(row), initial=0.0)), fresh_error_bound(self.params)
        limit, encodable = ckks_headroom(self.params), ckks_encodable(self.params)
        if self.round_type != "robust" and not n * top + (n + 2) * error < limit:
            raise Refused(f"n x |weight| x max |x| = {n} x {top:.6g} reaches the CKKS headroom {limit:.6g} of preset {self.preset!r}: "
                          f"the decrypted sum would wrap modulo {2 * limit:.6g}; scale the inputs down (or use fewer clients)",
                          party=f"client {client}", stage="encrypt")
        if not top + error < encodable:
            raise Refused(f"|weight| x max |x| = {top:.6g} reaches {encodable:.6g}, the most one encoding of preset {self.preset!r} "
                          "holds (SEAL refuses it); scale the inputs down", party=f"client {client}", stage="encrypt")

    def range_note(self) -> str:
        """What keeps a CKKS release within numeric_error (the guarantee's notes): the clients' headroom check."""
        p = self.params
        model = ("; with recompute the key holder also checks the hidden model's peak (without it, a wrapped model passes), and "
                 "refuses a model SEAL cannot re-encrypt" if self.round_type == "hidden" else "")
        return (f"numeric_error holds for inputs that passed their clients' headroom check (n x max |x| + error below "
                f"{ckks_headroom(p):.6g} and one input below {ckks_encodable(p):.6g}, what one encoding holds, else refused){model}: "
                "a Byzantine client can encrypt any value up to the modulus and make the sum wrap per coefficient, off by any amount "
                "(a sum is not robust); each client checks against the n the aggregator announces and signs that n, and the key "
                "holder verifies with its own round size (the roster's), so an aggregator announcing fewer clients gets its inputs "
                "refused (review 17)")

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        return self.run_split(self.check_inputs(inputs), dropouts, rng, transport)

    def open_round(self, n: int, d: int, rng: Randomness) -> OpenRound:
        """The aggregator's half. Clients sign with long-term identities: the engine seats the roster and the key
        directory (`OpenRound.seat`; in process, simulated identities), which the collector verifies with and
        whose roster the key holder maps to its own directory; what else a client's role makes public (a box
        key) arrives through `clients_ready` (`HeRound.announced`). The key holder is this process's own
        `KeyHolder` (its PKI: the same directory) unless the engine passes a remote one in `RoundEnd.key_holder`."""
        session = self._session(rng)
        client_keys: dict[int, bytes] = {}
        current = HeRound(n, d, session, HeCollector(n, session, self.keys.public, d, client_keys), client_keys)

        def seat(roster: list[int], directory: KeyDirectory) -> None:
            client_keys.update(enumerate(directory.for_roster(roster, party="server")))
            current.roster, current.source = list(roster), directory.source

        def ready(measurements: dict[int, dict]) -> None:
            current.announced.update({i: m[self.name] for i, m in measurements.items() if isinstance(m.get(self.name), dict)})

        return OpenRound({"session": session.hex(), "d": d, "n": n}, current.collector, (Stage.MASKED_INPUT,), lambda end: self._finish(current, end),
                         ready, use_roster=seat)

    def _finish(self, current: HeRound, end: RoundEnd) -> Output:
        """The sum round: one SUM of every collected input."""
        collector, d = current.collector, current.d
        included = tuple(sorted(collector.inputs))
        if len(included) < self.min_clients:
            raise BelowThreshold(f"{len(included)} inputs, the key holder decrypts sums of >= {self.min_clients}", party="server", stage="aggregate")
        with end.meter.server():
            payload = b"" if self.recompute else collector.total().to_bytes()
            request = self._request(collector, Target.SUM, payload)
        values, bound = self._ask(request, current, end, d)
        ring = Ring(self.bits)
        result = values if self.params.scheme == "ckks" else ring.reduce(np.round(values).astype(np.int64).astype(ring.dtype))
        guarantee = self.guarantee(current.n, d, len(included), bound, client_keys=current.source, **self.sizes(collector, d))
        report = LayerReport(self.name, end.meter.cost(end.transport, rounds=2), guarantee)
        return Output(result, included, (report,), tuple(end.rejected))

    def client_role(self, i: int, row: np.ndarray, public: dict, rng: Randomness, measurements: dict,
                    identity: ClientIdentity | None = None) -> ClearClient:
        """Client i's role: it encrypts `row` and signs the ciphertext's digest with its own long-term key.

        Raises:
            Refused: without `identity` (this client's signing key).
        """
        x = np.array(row)  # a copy: what the check saw is what is encrypted when the request arrives (review 18)
        session, n = announced(public, i, len(x))
        self.check_encoding(n, x, i)
        return he_client(i, n, session, lambda: self._ciphertext(i, x), self._signer(i, identity))

    @staticmethod
    def _signer(i: int, identity: ClientIdentity | None) -> Signer:
        """Client i's long-term signing key (`identity.signer`).

        Raises:
            Refused: without `identity`.
        """
        if identity is None:
            raise Refused("an HE client signs its ciphertext: it needs its identity (its signing key)", party=f"client {i}", stage="setup")
        return identity.signer

    def _ciphertext(self, i: int, row: np.ndarray) -> bytes:
        """Client i's encryption of its row (a test's Byzantine client overrides it)."""
        return self.keys.public.encrypt(row).to_bytes()

    def key_holder(self, params: dict, *, client_keys: dict[int, bytes], policy: KeyHolderPolicy | None = None,
                   ledger: ReleaseLedger | None = None, run: str = "local", **kw) -> KeyHolder:
        """The key holder of one round: the round's description from the aggregator (`params`: session,
        length, roster, and "asks", what it runs, which the policy must match: `KeyHolderPolicy.check_asked`),
        the clients' Ed25519 keys by position from the key holder's own PKI (`client_keys`, e.g.
        `KeyDirectory.for_roster(params["roster"])`), its policy and ledger its own (default: this process's key holder's)."""
        policy = policy or self.policy
        policy.check_asked(params.get("asks", {}))
        return KeyHolder(
            self.keys.secret, policy, session=bytes.fromhex(params["session"]), client_keys=client_keys,
            length=int(params["length"]), run=run, ledger=self._ledger if ledger is None else ledger, **kw,
        )

    def use_secret_context(self, context: HeContext) -> None:
        """Adopts a key set generated elsewhere (a key holder that keeps its own keys)."""
        if self._keys is not None and self._keys.secret is context:
            return
        public = context.to_bytes()
        self._keys = HeKeys(context, HeContext.from_bytes(self.params, public), len(public))

    def use_public_context(self, data: bytes) -> None:
        """Adopts the key holder's public context (a client or an aggregator whose key holder is elsewhere)."""
        if self._keys is None or self._keys.public_bytes != len(data) or self._keys.public.to_bytes() != data:
            self._keys = HeKeys(None, HeContext.from_bytes(self.params, data), len(data))

    @staticmethod
    def sizes(collector: HeCollector, d: int) -> dict[str, float]:
        """Report parameters: one client's ciphertext bytes and their expansion over d float32 values."""
        size = max((len(ct) for ct, _ in collector.inputs.values()), default=0)
        return {"ciphertext_bytes": size, "expansion_vs_float32": round(size / (4 * d), 2)}

    def _session(self, rng: Randomness) -> bytes:
        """The next round's session id: its round number (this aggregator's count) and 4 random bytes."""
        self._round += 1
        return session_of(self._round, rng.bytes(4))

    def _request(self, collector: HeCollector, target: Target, payload: bytes, *, clients: list[int] | None = None, extra: bytes = b"") -> DecryptRequest:
        """Relays the signed inputs of `clients` (default: all collected) when the key holder recomputes, or
        sends `payload` (the aggregator's result) with their manifest."""
        manifest = collector.manifest()
        if clients is not None:
            manifest = {u: manifest[u] for u in clients}
        if self.recompute:
            return DecryptRequest(target, manifest, b"", {u: collector.inputs[u][0] for u in manifest}, extra)
        return DecryptRequest(target, manifest, payload, None, extra)

    def _ask(self, request: DecryptRequest, current: HeRound, end: RoundEnd, count: int) -> tuple[np.ndarray, float]:
        """Carries `request` to the key holder (`end.key_holder`, or this process's) and its reply back; returns
        the released values and the CKKS error bound the key holder used."""
        payload, bound, _ = self._exchange(request, current, end)
        with end.meter.server():
            return parse_plaintext(Reader(payload, party="server", stage="decrypt"), count), bound

    def _exchange(self, request: DecryptRequest, current: HeRound, end: RoundEnd, **kw) -> tuple[bytes, float, KeyHolder | None]:
        """(reply payload, error bound, None) from the remote key holder of `end` (given `current.params`), or
        (..., the key holder) from this process's (`kw`: its hidden-state model), whose PKI is the directory this
        process seated (`current.client_keys`) and whose frames the in-process transport carries."""
        params = current.params(self)
        frame = self._frame(request, current.session)
        if end.key_holder is not None:
            return (*end.key_holder(frame, params), None)
        holder = self.key_holder(params, client_keys=dict(current.client_keys), **kw)
        return self._carry(holder, frame, current.session, end.transport, end.meter), holder.last_bound, holder

    @staticmethod
    def _frame(request: DecryptRequest, session: bytes) -> bytes:
        return encode_frame(Frame(Kind.DECRYPT_REQUEST, session, SERVER, KEY_HOLDER, request.encode()))

    def _carry(self, holder: KeyHolder, frame: bytes, session: bytes, transport: InProcessTransport, meter: CostMeter) -> bytes:
        """The in-process key holder: `frame` over the transport to it, its PLAINTEXT frame back; the payload."""
        for delivered in transport.carry(SERVER, KEY_HOLDER, frame):
            with meter.party("key holder"):
                reply = encode_frame(Frame(Kind.PLAINTEXT, session, KEY_HOLDER, SERVER, holder.handle(delivered)))
            for arriving in transport.carry(KEY_HOLDER, SERVER, reply):
                with meter.server():
                    answer = decode_frame(arriving, party="server", stage="decrypt")
                    if answer.kind != Kind.PLAINTEXT or answer.session != session or answer.sender != KEY_HOLDER:
                        raise MalformedMessage("unexpected reply from the key holder", party="server", stage="decrypt")
                    return answer.payload
        raise MalformedMessage("no authentic reply from the key holder", party="server", stage="decrypt")

    def guarantee(self, n: int, d: int, m: int, bound: float, *, server_learns: str | None = None, client_keys: str | None = None, **extra) -> Guarantee:
        """`bound`: the CKKS error bound of the decryption (the key holder floods with 2**flood_bits times it).
        The key holder's figures are those of this process's key holder (`policy`); a remote one's are the same, since
        it refuses an aggregator whose asked min_clients, flood_bits or recompute differ from its own (`check_asked`).
        `client_keys`: where the clients' verification keys came from (`KeyDirectory.source`)."""
        p, policy = self.params, self.policy
        ckks = p.scheme == "ckks"
        noise = 2.0**policy.flood_bits * bound if ckks else 0.0
        sizes = self.keys.public.key_bytes()
        check = "recomputes the sum of the signed inputs" if policy.recompute else "checks the signed manifest, trusts the aggregator's sum"
        return Guarantee(
            threat_model=ThreatModel.HONEST_BUT_CURIOUS_SERVER,
            server_learns=server_learns or (f"the aggregate of the {m} included inputs{' (rounded, flooded)' if ckks else ''}; " + (
                "the key holder receives every included client's own ciphertext (it recomputes the sum) and can decrypt each input"
                if policy.recompute else "the key holder learns the same (the aggregator's sum), nothing else, while the aggregator is honest-but-curious")),
            collusion=("any number of clients whose ciphertexts are honestly generated (one Byzantine client can expose the key, see notes); "
                       "the aggregator and the key holder must not collude (single-key HE, no threshold decryption)"
                       + ("; the key holder alone can decrypt every input it recomputes from" if policy.recompute else "")),
            dropout_tolerance=max(n - policy.min_clients, 0),
            exact=not ckks,
            numeric_error=bound + 6 * noise,
            parameters={
                "scheme": p.scheme, "preset": self.preset, "N": p.poly_modulus_degree, "log_q": p.log_q,
                "security_bits": p.security_bits, "slots": p.slots, "min_clients": policy.min_clients, "flood_bits": policy.flood_bits,
                "ciphertexts_per_client": -(-d // p.slots), "public_context_bytes": self.keys.public_bytes,
                **{f"{k}_key_bytes": v for k, v in sizes.items()},
                **({"ckks_error_bound": bound, "release_noise_std": noise} if ckks else {"plain_modulus": self.keys.public.plain_modulus}),
                **extra,
            },
            notes=(
                f"key holder {check} under its own policy ({policy.round_type} rounds, >= {policy.min_clients} signed inputs a release, "
                "one release sequence a round, kept in its ledger); "
                + (f"inputs count as distinct clients by their long-term signing keys, from {client_keys} "
                   "(clients colluding with the aggregator count too: a release hides an input among min_clients - 1 others only if they are honest); "
                   if client_keys else "")
                + HONEST_CIPHERTEXTS + "; " + ("" if policy.recompute else TRUSTED_SUM + "; ")
                + "keys are set up once per key holder and not counted in per-round bytes; "
                + ("CKKS release: rounded to bound/256 and discrete Gaussian noise of std 2**flood_bits x bound (Li-Micciancio countermeasure; "
                   "provable IND-CPA-D needs a statistical flooding factor, this is a heuristic for small flood_bits); "
                   + self.range_note() if ckks else "BFV decryption is exact; the key holder releases the sum reduced mod 2**bits (the ring sum, no more)")
            ),
        )


@dataclass
class CKKSAggregation(HeAggregation):
    """Approximate sum of float vectors under CKKS."""

    preset: str = "ckks-8192-sum"
    name: str = "ckks"
    scheme: ClassVar[str] = "ckks"


@dataclass
class BFVAggregation(HeAggregation):
    """Exact sum of ring elements (encoded updates) under BFV, with the plain-modulus overflow check."""

    preset: str = "bfv-8192"
    name: str = "bfv"
    scheme: ClassVar[str] = "bfv"


# the key holder recomputes (the default, what stops an active aggregator): every client's own ciphertext reaches it, so
# it could decrypt each input; its view is each client's own share (with recompute=False, only the aggregator's sum)
HE_VIEWS = {"server": "aggregate", "key holder": "own share", "released model": "released"}
MIN_CLIENTS = Field(int, 2, lambda v: v >= 1, ">= 1")  # a sum of one input is that input: 1 only on purpose


HONEST_TAIL = 1e-6  # build checks under float noise: an honest round exceeds the bound they use with at most this probability


def honest_coordinate_bound(ctx: StackContext) -> float:
    """What every coordinate of every honest input reaching this layer is at most, in a round, except with probability
    HONEST_TAIL: the clip, plus s sqrt(2 ln(2 m d / HONEST_TAIL)) when float noise of stddev s a coordinate
    (`ctx.noise_std`) lies between (a Gaussian tail, P[|N(0, s**2)| > s u] <= 2 exp(-u**2 / 2), union over the m d
    coordinates)."""
    tail = math.sqrt(2 * math.log(2 * ctx.participants * ctx.dim / HONEST_TAIL)) if ctx.noise_std else 0.0
    return ctx.clip + ctx.noise_std * tail


def check_build_headroom(protocol: HeAggregation, ctx: StackContext, offset: float = 0.0) -> HeAggregation:
    """At build, where the clip bounds what reaches the layer (every coordinate |x| <= `honest_coordinate_bound`: the
    clip, plus a tail of the float noise between), with the error terms of `HeAggregation.check_encoding`, which
    refuses the same at run time (a stack that builds is not refused by its honest clients, except with probability
    HONEST_TAIL under noise): one input (x weight) must stay below what one encoding holds (`secagg.he.ckks_encodable`);
    a sum of `ctx.participants` of them below the CKKS headroom (`ckks_headroom`); the hidden model's first model,
    `offset` (the initial model's max |value|) plus that sum, below what one encoding holds, as the key holder
    re-encrypts it (review 19). Robust rounds check only the first (their sums rest on the key holder's norm check).
    A layer between the clip and this one that leaves no bound (`ctx.clip_dropped_by`: top-k, adaptive-clip) is
    refused (review 21): a clip must sit inside it.

    Raises:
        StackError: naming the field clip, the bound and what it reaches.
    """
    if ctx.clip_dropped_by:
        raise StackError(f"needs a clip inside {ctx.clip_dropped_by}: no bound from the clip outside holds for what its clients check "
                         "against what one encoding holds; put clip(bound=...) after it", layer=ctx.layer, position=ctx.position, field="clip")
    if ctx.clip is None or (not ctx.clip_bounds_input and not ctx.noise_std):
        return protocol
    n, error, bound = ctx.participants, fresh_error_bound(protocol.params), honest_coordinate_bound(ctx)
    clipped = f"clipped to {ctx.clip}" + (f" (with the noise between, {bound:.6g} a coordinate)" if bound != ctx.clip else "")
    one = abs(protocol.input_weight) * bound
    encodable = ckks_encodable(protocol.params)
    if not one + error < encodable:
        raise StackError(f"one input {clipped} (x {abs(protocol.input_weight):.6g}) = {one:.6g} reaches {encodable:.6g}, what "
                         f"one encoding of {protocol.preset} holds; clip lower", layer=ctx.layer, position=ctx.position, field="clip")
    if protocol.round_type == "robust":
        return protocol
    peak = n * one + offset
    hidden = protocol.round_type == "hidden"
    limit = encodable if hidden else ckks_headroom(protocol.params)
    if not peak + (n + 2) * error < limit:
        what = f"the first model (max |w_0| {offset:.6g} + the sum), re-encrypted by the key holder, reaches {limit:.6g}, what one encoding" \
            if hidden else f"it reaches the CKKS headroom {limit:.6g} of"
        raise StackError(f"a sum of {n} inputs {clipped} (x {abs(protocol.input_weight):.6g}) = {n * one:.6g}: {what} "
                         f"{protocol.preset}{' holds' if hidden else ''}: it would wrap; clip lower", layer=ctx.layer, position=ctx.position, field="clip")
    return protocol


@register("ckks", leaf=True, fields={"min_clients": MIN_CLIENTS}, traits=Traits(observers=HE_VIEWS, output="sum"),
          about="approximate sum under CKKS with a non-colluding key holder")
def _ckks(values: dict, ctx: StackContext) -> Protocol:
    ctx.need_inputs({"min_clients": ("min_clients", values["min_clients"])})  # the key holder decrypts no fewer (review 13)
    return check_build_headroom(CKKSAggregation(min_clients=values["min_clients"]), ctx)


@register("bfv", leaf=True, flow={"ring": ""}, fields={"min_clients": MIN_CLIENTS, "bits": Field(int, 32, lambda v: 2 <= v <= 62, "in [2, 62]")},
          traits=Traits(observers=HE_VIEWS, output="sum"), ring_bits=lambda values, ctx: values["bits"],
          about="exact sum of ring elements under BFV (put discretize outside it) with a non-colluding key holder")
def _bfv(values: dict, ctx: StackContext) -> Protocol:
    ctx.need_inputs({"min_clients": ("min_clients", values["min_clients"])})  # the key holder decrypts no fewer (review 13)
    t = batching_modulus(preset(BFVAggregation.preset))
    if not bfv_sum_fits(ctx.participants, values["bits"], t):  # the check the round makes, at build (review 12)
        raise StackError(f"a sum of {ctx.participants} elements of Z_2^{values['bits']} overflows half the BFV plain modulus {t}: "
                         "use fewer bits", layer=ctx.layer, position=ctx.position, field="bits")
    return BFVAggregation(min_clients=values["min_clients"], bits=values["bits"])
