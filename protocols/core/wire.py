"""The versioned, length-checked message format every protocol speaks.

Frame (all integers big-endian):

    magic "SA" (2) | version (1) | kind (1) | session (8) | sender (4) | recipient (4) | length (4) | payload

`sender`/`recipient` are client ids, or one of the non-client parties (`SERVER`, the aggregator or
first server; `KEY_HOLDER`; `SECOND_SERVER`; `DEALER`). `decode_frame` checks every field against the
remaining bytes and never trusts a declared length: a frame whose length field disagrees with
its size is rejected, whatever it says. Payloads are read with `Reader`, which raises
`MalformedMessage` on truncation, on an oversized count and on bytes left over.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocols.core.errors import MalformedMessage

MAGIC = b"SA"
VERSION = 1
SERVER = 0xFFFFFFFF
KEY_HOLDER = 0xFFFFFFFE
SECOND_SERVER = 0xFFFFFFFD
DEALER = 0xFFFFFFFC
PARTY_NAMES = {SERVER: "server", KEY_HOLDER: "key holder", SECOND_SERVER: "second server", DEALER: "dealer"}


def party_name(party: int) -> str:
    """"server", "key holder", ... or "client i"."""
    return PARTY_NAMES.get(party, f"client {party}")
SESSION_BYTES = 8
_HEADER = struct.Struct(">2sBB8sIII")
HEADER_BYTES = _HEADER.size


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    session: bytes
    sender: int
    recipient: int
    payload: bytes  # a read-only memoryview when decoded with copy=False; to encode, also a `Writer` (see encode_frame)


def encode_frame(frame: Frame) -> bytes:
    """The frame's bytes. A `Writer` payload is joined with the header in one copy (a large vector is copied once, not
    into a payload first and then into the frame)."""
    parts = frame.payload.parts if isinstance(frame.payload, Writer) else (frame.payload,)
    length = sum(memoryview(part).nbytes for part in parts)
    return b"".join((_HEADER.pack(MAGIC, VERSION, frame.kind, frame.session, frame.sender, frame.recipient, length), *parts))


def decode_frame(data: bytes, *, party: str, stage: str, copy: bool = True) -> Frame:
    """Parses one frame from untrusted bytes. `copy=False`: the payload is a read-only memoryview of `data`
    (no copy of a large payload; valid while `data` is).

    Raises:
        MalformedMessage: on a short header, wrong magic or version, or a length field that differs
            from the number of payload bytes present.
    """
    if len(data) < HEADER_BYTES:
        raise MalformedMessage("truncated frame header", party=party, stage=stage)
    magic, version, kind, session, sender, recipient, length = _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise MalformedMessage("unknown magic or version", party=party, stage=stage)
    if length != len(data) - HEADER_BYTES:
        raise MalformedMessage("frame length field does not match its size", party=party, stage=stage)
    payload = bytes(data[HEADER_BYTES:]) if copy else memoryview(data)[HEADER_BYTES:].toreadonly()
    return Frame(kind, session, sender, recipient, payload)


def hex_bytes(value: object, size: int) -> bytes | None:
    """The `size` bytes an untrusted hex string of exactly 2 * size digits spells, else None (any other value or type)."""
    if not (isinstance(value, str) and len(value) == 2 * size and all(c in "0123456789abcdefABCDEF" for c in value)):
        return None
    return bytes.fromhex(value)


class Writer:
    """Builds a payload: fixed-width big-endian integers and byte strings."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, v: int) -> "Writer":
        self._parts.append(struct.pack(">B", v))
        return self

    def u32(self, v: int) -> "Writer":
        self._parts.append(struct.pack(">I", v))
        return self

    def raw(self, data: bytes) -> "Writer":
        """Bytes whose length the reader knows in advance."""
        self._parts.append(bytes(data))
        return self

    def view(self, data: bytes | memoryview) -> "Writer":
        """Like `raw` without copying `data` before `getvalue` (one copy then): `data` must not change until then."""
        self._parts.append(data)
        return self

    def blob(self, data: bytes) -> "Writer":
        """Bytes prefixed by their u32 length."""
        return self.u32(len(data)).raw(data)

    def ids(self, values) -> "Writer":
        """A u32 count, then that many u32 ids."""
        values = list(values)
        self.u32(len(values))
        self._parts.append(struct.pack(f">{len(values)}I", *values))
        return self

    def entries(self, items: dict[int, bytes]) -> "Writer":
        """A u32 count, then (u32 id, fixed-size bytes) pairs in ascending id order."""
        self.u32(len(items))
        for key in sorted(items):
            self.u32(key).raw(items[key])
        return self

    @property
    def parts(self) -> tuple[bytes | memoryview, ...]:
        return tuple(self._parts)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads a payload written by `Writer`; every read checks the bytes that remain first."""

    def __init__(self, data: bytes, *, party: str, stage: str) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.party, self.stage = party, stage

    def fail(self, msg: str) -> MalformedMessage:
        return MalformedMessage(msg, party=self.party, stage=self.stage)

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def raw(self, n: int) -> bytes:
        if n < 0 or n > self.remaining():
            raise self.fail(f"truncated payload: wanted {n} bytes, {self.remaining()} left")
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += n
        return out

    def view(self, n: int) -> memoryview:
        """Like `raw`, without a copy: a read-only view of the next n bytes (valid while the payload is)."""
        if n < 0 or n > self.remaining():
            raise self.fail(f"truncated payload: wanted {n} bytes, {self.remaining()} left")
        out = self._data[self._pos : self._pos + n].toreadonly()
        self._pos += n
        return out

    def u8(self) -> int:
        return self.raw(1)[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.raw(4))[0]

    def blob(self, max_len: int, copy: bool = True) -> bytes:
        """A u32 length (at most `max_len`) and that many bytes; `copy=False`: a read-only view of them (see `view`)."""
        n = self.u32()
        if n > max_len:
            raise self.fail(f"declared length {n} exceeds the limit {max_len}")
        return self.raw(n) if copy else self.view(n)

    def count(self, item_bytes: int, max_count: int) -> int:
        """A u32 count of items of at least `item_bytes` each, checked against `max_count` and the bytes left."""
        n = self.u32()
        if n > max_count or n * item_bytes > self.remaining():
            raise self.fail(f"declared count {n} exceeds the limit {max_count} or the bytes left")
        return n

    def ids(self, max_count: int, limit: int) -> list[int]:
        """Distinct, ascending ids below `limit`."""
        n = self.count(4, max_count)
        values = list(struct.unpack(f">{n}I", self.raw(4 * n)))
        if any(v >= limit for v in values) or any(a >= b for a, b in zip(values, values[1:])):
            raise self.fail("ids out of range or not strictly ascending")
        return values

    def entries(self, item_bytes: int, max_count: int, limit: int) -> dict[int, bytes]:
        """(id, bytes) pairs written by `Writer.entries`: ids distinct, ascending and below `limit`."""
        n = self.count(4 + item_bytes, max_count)
        out: dict[int, bytes] = {}
        last = -1
        for _ in range(n):
            key = self.u32()
            if key >= limit or key <= last:
                raise self.fail("entry ids out of range or not strictly ascending")
            out[key] = self.raw(item_bytes)
            last = key
        return out

    def done(self) -> None:
        if self.remaining():
            raise self.fail(f"{self.remaining()} unexpected trailing bytes")
