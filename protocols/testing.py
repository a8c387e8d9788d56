"""Hypothesis strategies and invariant checks for property-testing secure-aggregation protocols.

Public so that a user can property-test a protocol variant of their own:

    from hypothesis import given
    from protocols.testing import rounds, check_round

    @given(rounds())
    def test_my_variant(case):
        check_round(case)                      # exact sum over the included set, or abort exactly when predicted

`expected_survivors` is an independent model of who survives each stage of pairwise masking,
written from the protocol's rules rather than from its code.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from protocols.byzantine_shares import BYZANTINE_SHARE_MODES, ByzantineShares, _encode, _matrices  # noqa: F401 (public here too)
from protocols.core.errors import Aborted, BelowThreshold, ProtocolError
from protocols.core.messages import Kind
from protocols.core.protocol import Protocol
from protocols.core.report import Output
from protocols.core.schedule import DropoutSchedule, Stage
from protocols.core.secure_sum import secure_sum
from protocols.core.transport import chain  # noqa: F401 (public here too)
from protocols.core.wire import HEADER_BYTES, SERVER, Frame, Reader, Writer, decode_frame, encode_frame
from protocols.masking.client import MaskingClient
from protocols.masking.graph import harary_neighbours
from protocols.masking.messages import (
    COMMITMENT_BYTES,
    SHARE_BYTES,
    SHARE_CIPHERTEXT_BYTES,
    UNREADABLE,
    Secret,
    encode_unmask_shares,
    parse_unmask_reply,
    parse_unmask_shares,
)
from protocols.masking.recovery import robust_reconstruct
from protocols.masking.secagg import SecAgg, SecAggPlus
from protocols.masking.server import BadShares, MaskingServer
from protocols.masking.setup import RoundSetup
from secagg.agreement import X25519Agreement
from secagg.randomness import SeededRandomness
from secagg.ring import Ring
from secagg.signatures import Signer


@dataclass(frozen=True)
class RoundCase:
    """One generated round: inputs (n, d) in Z_2^bits, a protocol, a dropout schedule, a seed."""

    inputs: np.ndarray
    protocol: Protocol
    dropouts: DropoutSchedule
    seed: int


@st.composite
def ring_inputs(draw, n: int, d: int, bits: int) -> np.ndarray:
    """Uniform (n, d) inputs of Z_2^bits, from a drawn seed."""
    ring = Ring(bits)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    raw = rng.integers(0, 2**63, size=(n, d), dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, size=(n, d), dtype=np.uint64)
    return ring.reduce(raw.astype(ring.dtype))


@st.composite
def schedules(draw, n: int, stages: tuple[Stage, ...] = tuple(Stage), max_rate: float = 0.5) -> DropoutSchedule:
    """A dropout schedule: a random subset of at most max_rate * n clients, each at a random stage."""
    dropped = draw(st.sets(st.integers(0, n - 1), max_size=int(max_rate * n)))
    return DropoutSchedule({i: draw(st.sampled_from(stages)) for i in sorted(dropped)})


@st.composite
def masking_protocols(draw, n: int, bits: int) -> Protocol:
    """SecAgg, or SecAgg+ with an even k < n; t in [1, k] (in (k/2, k] when active)."""
    active = draw(st.booleans())
    k = n - 1 if n < 4 or draw(st.booleans()) else draw(st.sampled_from(list(range(2, n - 1, 2))))
    t = draw(st.integers(k // 2 + 1 if active else 1, k))
    if k == n - 1:
        return SecAgg(t=t, bits=bits, active=active)
    return SecAggPlus(n=n, k=k, t=t, bits=bits, active=active)


@st.composite
def rounds(draw, min_n: int = 2, max_n: int = 40, max_d: int = 64) -> RoundCase:
    """A random round of SecAgg or SecAgg+: n in [min_n, max_n], d in [1, max_d], bits in [1, 64]."""
    n = draw(st.integers(min_n, max_n))
    d = draw(st.integers(1, max_d))
    bits = draw(st.sampled_from([1, 7, 8, 13, 16, 20, 32, 33, 63, 64]))
    return RoundCase(draw(ring_inputs(n, d, bits)), draw(masking_protocols(n, bits)), draw(schedules(n)), draw(st.integers(0, 2**32 - 1)))


def expected_survivors(neighbours: list[frozenset[int]], t: int, dropouts: DropoutSchedule, active: bool,
                       unreadable: dict[int, set[int]] | None = None, uncounted: dict[int, set[int]] | None = None) -> tuple[int, ...] | None:
    """The included set (U3) a round of pairwise masking must produce, or None if it must abort.

    Rules (Bonawitz et al., Bell et al.): a stage needs t + 1 answers at the server; a client needs
    t live neighbours to share, t neighbours' shares (ciphertexts, readable or not) to mask, t surviving
    neighbours to unmask (and in active mode t signatures from them, not counting those of `uncounted[v]`, the
    clients at which v's share failed to authenticate; default `unreadable`); every survivor's seed and every
    dropped sharer's key with a surviving neighbour needs t shares from neighbours that answered the
    unmasking request, leaving out `unreadable[v]`, the holders that hold no readable share of v.
    """
    n = len(neighbours)
    unreadable = unreadable or {}
    uncounted = unreadable if uncounted is None else uncounted
    blind = {u: {v for v, at in uncounted.items() if u in at} for u in range(n)} if active else None

    def live(stage: Stage, candidates: set[int], needs: set[int], skip: dict[int, set[int]] | None = None) -> set[int] | None:
        out = {u for u in candidates if dropouts.active(u, stage) and len(neighbours[u] & needs - (skip or {}).get(u, set())) >= t}
        return out if len(out) >= t + 1 else None

    u1 = {u for u in range(n) if dropouts.active(u, Stage.ADVERTISE_KEYS)}
    if len(u1) < t + 1:
        return None
    u2 = live(Stage.SHARE_KEYS, u1, u1)
    u3 = u2 and live(Stage.MASKED_INPUT, u2, u2)
    if not u3:
        return None
    u4 = live(Stage.CONSISTENCY_CHECK, u3, u3) if active else u3
    u5 = u4 and live(Stage.UNMASKING, u4, u4 if active else u3, blind)
    if not u5:
        return None
    owners = u3 | {v for v in u2 - u3 if neighbours[v] & u3}
    if any(len(neighbours[v] & u5 - unreadable.get(v, set())) < t for v in owners):
        return None
    return tuple(sorted(u3))


def check_sum(inputs: np.ndarray, out: Output, bits: int) -> None:
    """Asserts that out.result is the sum mod 2**bits of the included rows of `inputs`."""
    ring = Ring(bits)
    expected = ring.sum(inputs[list(out.included)]) if out.included else ring.zeros(inputs.shape[1])
    assert out.result.dtype == ring.dtype
    assert np.array_equal(out.result, expected), "unmasked result differs from the plaintext sum of the included inputs"


def share_blame(out: Output) -> tuple[set[int], set[tuple[int, int]]]:
    """Whom a masking round's `rejected` names for bad unmasking shares: (holders named alone, for shares out of the
    field; (dealer, holder) pairs, for shares off the recovered polynomial)."""
    alone, pairs = set(), set()
    for e in out.rejected:
        if isinstance(e, BadShares):
            alone |= {e.holder} if e.holder is not None else set()
            pairs |= set(e.pairs)
    return alone, pairs


def check_round(case: RoundCase) -> Output | None:
    """Runs the case; asserts it returns exactly the sum over the predicted included set, or aborts
    with BelowThreshold exactly when the model predicts. Returns the output (None on abort)."""
    protocol = case.protocol
    try:
        out = secure_sum(case.inputs, protocol=protocol, dropouts=case.dropouts, seed=case.seed)
    except BelowThreshold:
        out = None
    if out is not None:
        params = out.reports[-1].guarantee.parameters
        neighbours = harary_neighbours(case.inputs.shape[0], params["k"], bytes.fromhex(params["graph_seed"]))
        predicted = expected_survivors(neighbours, params["t"], case.dropouts, protocol.active)
        assert predicted == out.included, f"included {out.included}, model predicts {predicted}"
        check_sum(case.inputs, out, protocol.bits)
        unexpected = [e for e in out.rejected if not (isinstance(e, BelowThreshold) and e.party.startswith("client"))]
        assert not unexpected, f"an honest round rejected messages: {unexpected}"  # only clients left short of neighbours may stop
    else:
        n = case.inputs.shape[0]
        k, t = protocol.degree_and_threshold(n)
        assert len(case.dropouts.drops) > k - t, "a round within the stated dropout tolerance (k - t) aborted"
        if k == n - 1:  # complete graph: known without a report
            predicted = expected_survivors(harary_neighbours(n, k, None), t, case.dropouts, protocol.active)
            assert predicted is None, f"aborted, but the model predicts survivors {predicted}"
    return out


# --- malicious messages -------------------------------------------------------------------------

DOWN_STAGE = {Kind.REQUEST: Stage.ADVERTISE_KEYS, Kind.KEYS: Stage.SHARE_KEYS, Kind.RELAYED_SHARES: Stage.MASKED_INPUT,
              Kind.SURVIVORS: Stage.CONSISTENCY_CHECK, Kind.UNMASK_REQUEST: Stage.UNMASKING}
UP_STAGE = {Kind.ADVERTISE: Stage.ADVERTISE_KEYS, Kind.SHARES: Stage.SHARE_KEYS, Kind.VECTOR: Stage.MASKED_INPUT,
            Kind.SIGNATURE: Stage.CONSISTENCY_CHECK, Kind.UNMASK_SHARES: Stage.UNMASKING}
FORMAT_ATTACKS = ("truncate", "truncate-relabel", "extend", "extend-relabel", "header-flip", "wire-flip")
REPLAY_ATTACKS = ("duplicate", "stale")


def _relabel(frame: bytes) -> bytes:
    """Rewrites the header's length field to the frame's real payload size (so the frame parses)."""
    return frame[: HEADER_BYTES - 4] + struct.pack(">I", len(frame) - HEADER_BYTES) + frame[HEADER_BYTES:]


@dataclass
class Attack:
    """Alters the first frame of `kind` between client `client` and the server.

    `mode` is one of FORMAT_ATTACKS (the frame must be rejected), REPLAY_ATTACKS (an extra copy
    arrives: at once, or after the next frame on the same link) or "payload-flip" (one payload
    byte flipped by a compromised endpoint). `position` picks the byte or the cut.
    """

    client: int
    kind: Kind
    mode: str
    position: int
    fired: bool = False
    _held: bytes | None = None

    @property
    def stage(self) -> Stage:
        return {**DOWN_STAGE, **UP_STAGE}[self.kind]

    def _targets(self, src: int, dst: int, frame: bytes) -> bool:
        return not self.fired and self.client in (src, dst) and len(frame) > 3 and frame[3] == self.kind

    def tamper(self, src: int, dst: int, frame: bytes) -> list[bytes]:
        if self._held is not None and self.client in (src, dst):
            held, self._held = self._held, None
            return [frame, held]
        if not self._targets(src, dst, frame) or self.mode == "wire-flip":
            return [frame]
        self.fired = True
        body = len(frame) - HEADER_BYTES
        if self.mode.startswith("truncate"):
            cut = frame[: self.position % len(frame)]
            return [_relabel(cut) if self.mode.endswith("relabel") and len(cut) >= HEADER_BYTES else cut]
        if self.mode.startswith("extend"):
            longer = frame + bytes([self.position % 256]) * (1 + self.position % 9)
            return [_relabel(longer) if self.mode.endswith("relabel") else longer]
        if self.mode == "header-flip":
            return [_flip(frame, self.position % HEADER_BYTES)]
        if self.mode == "payload-flip":
            return [_flip(frame, HEADER_BYTES + self.position % body) if body else frame]
        if self.mode == "duplicate":
            return [frame, frame]
        self._held = frame  # stale: re-delivered after the next frame on this link
        return [frame]

    def wire(self, src: int, dst: int, sealed: bytes) -> list[bytes]:
        if self.mode != "wire-flip" or not self._targets(src, dst, sealed):
            return [sealed]
        self.fired = True
        return [_flip(sealed, self.position % len(sealed))]


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01 << (index % 8)
    return bytes(out)


@st.composite
def attacks(draw, n: int, active: bool, modes: tuple[str, ...]) -> Attack:
    kinds = [k for k in (*DOWN_STAGE, *UP_STAGE) if active or k not in (Kind.SURVIVORS, Kind.SIGNATURE)]
    return Attack(draw(st.integers(0, n - 1)), draw(st.sampled_from(kinds)), draw(st.sampled_from(modes)), draw(st.integers(0, 2**20)))


def run_attacked(case: RoundCase, attack: Attack) -> Output | None:
    """Runs the case under `attack`; returns the output, or None if the round aborted with a ProtocolError."""
    try:
        return secure_sum(case.inputs, protocol=case.protocol, dropouts=case.dropouts, seed=case.seed, tamper=attack.tamper, wire=attack.wire)
    except (BelowThreshold, Aborted):
        return None


def as_dropout(dropouts: DropoutSchedule, client: int, stage: Stage) -> DropoutSchedule:
    """The schedule in which `client` also drops at `stage` (what a rejected frame amounts to)."""
    return dropouts.with_drops({client: stage})


# --- Byzantine senders of encrypted shares, Byzantine receivers that claim them unreadable (masking) ------

SHARE_CORRUPTIONS = ("flip", "truncate", "other-pair", "replay")


def share_ciphertexts(frame: bytes) -> tuple[bytes, dict[int, bytes]]:
    """(commitment, recipient -> ciphertext) of a SHARES frame."""
    r = Reader(decode_frame(frame, party="attack", stage="share_keys").payload, party="attack", stage="share_keys")
    commitment, entries = r.raw(COMMITMENT_BYTES), r.entries(SHARE_CIPHERTEXT_BYTES, 2**20, 2**32 - 1)
    r.done()
    return commitment, entries


def corrupt_shares(frame: bytes, victims: set[int], mode: str, position: int, stale: dict[int, bytes] | None = None) -> tuple[bytes, set[int]]:
    """A Byzantine sender's SHARES frame: its ciphertexts for `victims` with one bit flipped ("flip", at `position`),
    cut short ("truncate": the frame no longer parses), replaced by the one it made for its next recipient
    ("other-pair"), or by `stale[u]`, its ciphertext for u in an earlier round (any of them if u had none there:
    "replay"). Returns the frame and the victims hit (its recipients among `victims`).

    Raises:
        ValueError: for another mode, or "replay" without a stale ciphertext.
    """
    if mode not in SHARE_CORRUPTIONS or (mode == "replay" and not stale):
        raise ValueError(f"mode={mode!r} is not one of {SHARE_CORRUPTIONS}, or replays without stale ciphertexts")
    f = decode_frame(frame, party="attack", stage="share_keys")
    commitment, entries = share_ciphertexts(frame)
    order, hit = sorted(entries), victims & entries.keys()
    changed = dict(entries)
    for u in hit:
        if mode == "flip":
            changed[u] = _flip(entries[u], position % len(entries[u]))
        elif mode == "truncate":
            changed[u] = entries[u][: position % len(entries[u])]
        elif mode == "other-pair":
            other = order[(order.index(u) + 1) % len(order)]
            changed[u] = entries[other] if other != u else _flip(entries[u], position % len(entries[u]))
        else:
            changed[u] = stale[u] if u in stale else next(iter(stale.values()))
    payload = commitment + Writer().entries(changed).getvalue()
    return encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, payload)), hit


def claim_unreadable(frame: bytes, accused: set[int], n: int, junk: bool = False) -> tuple[bytes, set[int]]:
    """A Byzantine receiver's UNMASK_SHARES frame reporting the shares of `accused` (those it holds) unreadable,
    withholding them; `junk`: the reports carry nonzero bytes (the server must reject the frame). Returns the frame
    and the accused whose share it held; with `junk`, every peer it reported, its genuine reports too (any of them
    makes the server reject the frame)."""
    f = decode_frame(frame, party="attack", stage="unmasking")
    shares, unreadable = parse_unmask_reply(Reader(f.payload, party="attack", stage="unmasking"), n)
    claimed = accused & shares.keys()
    kept = {v: share for v, share in shares.items() if v not in claimed}
    if junk:
        entries = {v: bytes([kind]) + share.astype(">u8").tobytes() for v, (kind, share) in kept.items()}
        entries.update({v: bytes([UNREADABLE]) + b"\x01" * SHARE_BYTES for v in claimed | unreadable})
        payload = Writer().entries(entries).getvalue()
    else:
        payload = encode_unmask_shares(kept, frozenset(claimed | unreadable))
    return encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, payload)), (claimed | unreadable) if junk else claimed


# --- Byzantine clients of the two-server protocol (protocols.byzantine_shares) ----------------------

@st.composite
def byzantine_clients(draw, n: int, f: int, bound: int = 0, bits: int = 32,
                      modes: tuple[str, ...] = BYZANTINE_SHARE_MODES) -> list[ByzantineShares]:
    """Up to f Byzantine two-server clients (see `ByzantineShares`), never client 0 (the replays' victim)."""
    who = draw(st.lists(st.integers(1, n - 1), min_size=1 if f and n > 1 else 0, max_size=f, unique=True)) if n > 1 else []
    return [ByzantineShares(u, draw(st.sampled_from(modes)), draw(st.integers(0, 2**20)), bound=bound, bits=bits)
            for u in sorted(who)]

# --- an active server that equivocates about the survivors (masking) -----------------------------


@dataclass(frozen=True)
class EquivocationOutcome:
    """What an equivocating server obtained of the victim's two secrets: the shares it collected of
    each (its colluders' included) and each secret it reconstructed and verified (None if not)."""

    seed_shares: int
    key_shares: int
    seed: bytes | None
    key: bytes | None

    @property
    def both(self) -> bool:
        return self.seed is not None and self.key is not None


def equivocation_attack(setup: RoundSetup, inputs: np.ndarray, victim: int, corrupt: set[int] | int, seed: int) -> EquivocationOutcome:
    """An active server with the clients `corrupt` tries to learn both secrets of honest client `victim`;
    an int `corrupt` = c makes the first c of the victim's neighbours corrupt once the graph is known
    (the worst case for the victim, beyond what a random graph allows).

    It runs the honest protocol up to the masked inputs (real `MaskingClient`s, the real
    `MaskingServer` relaying), then tells a set A of the victim's honest neighbours that it survived
    and the rest, B, that it dropped (|A| = t - c_v, so that A plus the c_v corrupt neighbours make t),
    each honest client outside the victim's neighbourhood getting whichever list more of its
    neighbours in A or B received. Corrupt clients sign both lists and hand over both of their
    shares; each honest client is sent the signatures of its list. Honest clients check everything
    they are sent as in a real round. Round parameters are taken as given (not checked).
    """
    n = setup.n
    rng = SeededRandomness(seed)
    signers = [Signer.generate(rng) for _ in range(n)]
    pki = [s.public_bytes() for s in signers]
    clients = [MaskingClient(i, setup, inputs[i], rng.fork(f"client {i}"), signers[i], pki) for i in range(n)]
    server = MaskingServer(setup, pki)
    for _ in (Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS, Stage.MASKED_INPUT):
        for u, frame in server.requests().items():
            server.receive(clients[u].handle(frame), link=u)
        server.close()
    graph = server.neighbours
    if isinstance(corrupt, int):
        corrupt = set(sorted(graph[victim])[:corrupt])
    everyone = sorted(range(n))
    lists = {"A": everyone, "B": [u for u in everyone if u != victim]}
    honest = [u for u in graph[victim] if u not in corrupt]
    c_v = len(graph[victim] & corrupt)
    group = {u: "A" for u in range(n)}
    for u in honest[max(setup.t - c_v, 0):]:
        group[u] = "B"
    for u in range(n):
        if u not in graph[victim] and u != victim and u not in corrupt:
            votes = [group[w] for w in graph[u] if w in graph[victim] and w not in corrupt]
            group[u] = "B" if votes.count("B") > votes.count("A") else "A"
    signatures: dict[str, dict[int, bytes]] = {"A": {}, "B": {}}
    for name, survivors in lists.items():
        for c in corrupt:
            signatures[name][c] = signers[c].sign(setup.consistency_message(survivors, server._keys[c][:64]))
    for u in range(n):
        if u in corrupt:
            continue
        request = Frame(Kind.SURVIVORS, setup.session, SERVER, u, Writer().ids(lists[group[u]]).getvalue())
        try:
            reply = decode_frame(clients[u].handle(encode_frame(request)), party="server", stage="consistency_check")
        except ProtocolError:
            continue
        signatures[group[u]][u] = reply.payload
    collected = {Secret.SELF_MASK_SEED: {}, Secret.MASK_KEY: {}}
    for c in corrupt & graph[victim]:
        seed_share, key_share = clients[c]._held[victim]
        collected[Secret.SELF_MASK_SEED][c], collected[Secret.MASK_KEY][c] = seed_share, key_share
    for u in honest:
        survivors = lists[group[u]]
        signed = {v: s for v, s in signatures[group[u]].items() if v in graph[u] and v in survivors}
        request = Frame(Kind.UNMASK_REQUEST, setup.session, SERVER, u, Writer().ids(survivors).entries(signed).getvalue())
        try:
            reply = decode_frame(clients[u].handle(encode_frame(request)), party="server", stage="unmasking")
        except ProtocolError:
            continue
        shares = parse_unmask_shares(Reader(reply.payload, party="server", stage="unmasking"), n)
        if victim in shares:
            kind, share = shares[victim]
            collected[kind][u] = share
    checks = {
        Secret.SELF_MASK_SEED: lambda s: setup.commitment(victim, s) == server._commitments[victim],
        Secret.MASK_KEY: lambda s: X25519Agreement.from_private_bytes(s).public_bytes() == server._keys[victim][32:64],
    }
    found = {}
    for kind, held in collected.items():
        found[kind] = None
        if len(held) >= setup.t:
            holders = sorted(held)
            found[kind] = robust_reconstruct(holders, np.stack([held[w] for w in holders]), setup.t, checks[kind])[0]
    return EquivocationOutcome(len(collected[Secret.SELF_MASK_SEED]), len(collected[Secret.MASK_KEY]),
                               found[Secret.SELF_MASK_SEED], found[Secret.MASK_KEY])

# --- Byzantine ciphertexts and a deviating aggregator (homomorphic encryption) ---------------------
# A Byzantine client chooses its ciphertext bytes freely (and signs them); a deviating aggregator
# chooses its decryption requests freely. `check_releases` is an independent model of the key
# holder's policy (`protocols.he.policy`), written from its rules rather than from its code.

import random  # noqa: E402

import tenseal as ts  # noqa: E402
import tenseal.sealapi as seal  # noqa: E402

from protocols.he.messages import Target  # noqa: E402
from protocols.he.policy import KeyHolderPolicy  # noqa: E402
from secagg.he import EncryptedVector, HeContext  # noqa: E402
from secagg.he_distances import save_ciphertext  # noqa: E402

MUTATIONS = ("flip", "truncate", "extend", "header", "other_scale", "padding_write", "imaginary", "scaled", "replayed", "negated")


def mutate_ciphertext(kind: str, honest: bytes, public: HeContext, x: np.ndarray, rng: random.Random, others: list[bytes]) -> bytes:
    """A Byzantine client's ciphertext for input x (honest encryption `honest`): random bit flips, a cut,
    bytes appended, a forged vector header, an encryption at another CKKS scale, x with large values
    written into the padding slots, x scaled to norm 100 with imaginary parts of the same energy (which
    cancel its squared norm in a real-part product), x scaled by up to 10**4, another client's
    ciphertext replayed, or negated (homomorphically: the sum of the two is a transparent ciphertext)."""
    if kind == "flip":
        b = bytearray(honest)
        for _ in range(rng.choice([1, 2, 8, 64])):
            b[rng.randrange(8, len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "truncate":
        return honest[: rng.randrange(len(honest))]
    if kind == "extend":
        return honest + rng.randbytes(rng.choice([1, 4, 100]))
    if kind == "header":
        return struct.pack(">II", rng.choice([0, len(x) + 1, 2**32 - 1]), rng.choice([0, 1, 2, 2**32 - 1])) + honest[8:]
    if kind in ("other_scale", "padding_write"):
        s = public.params.slots
        rows = np.zeros((-(-len(x) // s), s))
        rows.flat[: len(x)] = x
        if kind == "padding_write":
            rows.flat[len(x):] = rng.choice([1.0, 100.0, 1e4]) * rng.choice([-1, 1])
        scale = 2.0 ** (public.params.scale_bits + rng.choice([-10, -1, 1, 5])) if kind == "other_scale" else None
        chunks = [ts.ckks_vector(public.tenseal, row.tolist(), scale=scale) for row in rows]
        return EncryptedVector(chunks, len(x)).to_bytes()
    if kind == "imaginary":
        s = public.params.slots
        values = np.zeros(-(-len(x) // s) * s, dtype=complex)
        values[: len(x)] = np.asarray(x) * 100 / max(np.linalg.norm(x), 1e-12)
        spare = slice(len(x), None) if values.size > len(x) else slice(0, len(x))
        values[spare] += 1j * 100 / np.sqrt(values[spare].size)
        return complex_ciphertext(public, values.reshape(-1, s), len(x))
    if kind == "scaled":
        return public.encrypt(np.asarray(x, dtype=np.float64) * rng.choice([-1e4, 10.0, 1e4])).to_bytes()
    if kind == "replayed":
        return rng.choice(others or [honest])
    if kind == "negated":
        other = EncryptedVector.from_bytes(public, rng.choice(others or [honest]), length=len(x))
        return EncryptedVector([c.neg() for c in other.chunks], len(x)).to_bytes()
    raise ValueError(f"mutation must be one of {MUTATIONS}, found {kind!r}")


def complex_ciphertext(public: HeContext, rows: np.ndarray, length: int) -> bytes:
    """An `EncryptedVector` of `length` values whose chunk k encrypts the complex slot values rows[k]
    (TenSEAL's own API encodes reals only; its serialization is a CKKSVectorProto: sizes, ciphertexts, scale)."""
    sctx = public.tenseal.seal_context().data
    encoder, encryptor = seal.CKKSEncoder(sctx), seal.Encryptor(sctx, public.tenseal.public_key().data)
    scale, parts = 2.0**public.params.scale_bits, [struct.pack(">II", length, len(rows))]
    for row in rows:
        plain, ct = seal.Plaintext(), seal.Ciphertext()
        encoder.encode(list(row), scale, plain)
        encryptor.encrypt(plain, ct)
        raw, sizes = save_ciphertext(ct), _varint(len(row))
        proto = b"\x0a" + _varint(len(sizes)) + sizes + b"\x12" + _varint(len(raw)) + raw + b"\x19" + struct.pack("<d", scale)
        parts += [struct.pack(">I", len(proto)), proto]
    return b"".join(parts)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def byzantine_ciphertexts(honest: bytes, public: HeContext, x: np.ndarray, others: list[bytes], kinds: tuple[str, ...] = MUTATIONS):
    """Strategy: (kind, bytes) a Byzantine client may send in place of `honest` (a seeded `random.Random`
    drives the mutation: ciphertext bytes differ run to run, so Hypothesis must not track its draws)."""
    return st.tuples(st.sampled_from(kinds), st.integers(0, 2**32 - 1)).map(
        lambda ks: (ks[0], mutate_ciphertext(ks[0], honest, public, x, random.Random(ks[1]), others)))


@dataclass(frozen=True)
class AggregatorStep:
    """One request of a deviating aggregator: under session number `session` (an index into the sessions
    the test holds signatures for, or one past them: a forged session), for `target`, listing `clients`
    (None: the selection the aggregator computes from the distances released in that session);
    `inputs`: relay the signed ciphertexts ("relay"), swap two of them ("swap"), or send none ("none");
    `extra`: forged target-specific bytes (e.g. a forged rule, f and m)."""

    session: int
    target: Target
    clients: tuple[int, ...] | None
    inputs: str
    extra: bytes


@st.composite
def aggregator_requests(draw, n: int, sessions: int, max_steps: int = 6) -> list[AggregatorStep]:
    """Strategy: a deviating aggregator's request sequence over n clients and `sessions` signed sessions."""
    everyone = tuple(range(n))
    step = st.builds(
        AggregatorStep, st.one_of(st.just(0), st.integers(0, sessions)), st.sampled_from(list(Target) + [Target.SCALARS, Target.SELECTED_SUM] * 2),
        st.one_of(st.just(everyone), st.sampled_from([everyone[1:], everyone[:-1], None, None]),
                  st.lists(st.integers(0, n - 1), max_size=n, unique=True).map(lambda c: tuple(sorted(c)))),
        st.sampled_from(["relay", "relay", "swap", "none"]), st.binary(max_size=9),
    )
    return draw(st.lists(step, min_size=1, max_size=max_steps))


def check_releases(policy: KeyHolderPolicy, releases: list[tuple[bytes, Target, tuple[int, ...]]], selection=None, over_bound=()) -> None:
    """Asserts that what a key holder released obeys `policy`: releases as (session, target, listed clients) in
    order. Each release lists >= min_clients clients and is a target its round type allows; a round (the
    session's first 4 bytes) has one session and releases exactly a prefix of its round type's sequence;
    rounds go forward. For robust rounds, `selection(session)` gives the set the rule makes on the released
    distances (None if unknown): a SELECTED_SUM lists exactly it, and never a client of `over_bound`."""
    allowed = {"sum": [Target.SUM], "hidden": [Target.MODEL], "robust": [Target.SCALARS, Target.SELECTED_SUM]}[policy.round_type]
    rounds: dict[int, tuple[bytes, list[Target]]] = {}
    latest = -1
    for session, target, clients in releases:
        r = int.from_bytes(session[:4], "big")
        assert len(clients) >= policy.min_clients, f"{target.name} of {len(clients)} clients, min_clients {policy.min_clients}"
        assert target in allowed, f"{target.name} released in a {policy.round_type} round"
        assert r >= latest, f"round {r} released after round {latest}"
        latest = r
        first, done = rounds.setdefault(r, (session, []))
        assert first == session, f"round {r} released under two sessions"
        done.append(target)
        assert done == allowed[: len(done)], f"round {r} released {[t.name for t in done]}"
        if target == Target.SELECTED_SUM:
            assert not set(clients) & set(over_bound), "a selected client is over the norm bound"
            if selection is not None and selection(session) is not None:
                assert tuple(clients) == tuple(selection(session)), "selected sum is not the rule's selection"
