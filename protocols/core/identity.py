"""Which client holds which row of a round: per-client state (error-feedback memory) is keyed by the
client's persistent id, never by its row, since with client sampling row i is someone else next round.

The engine that builds client roles says who is who: `secure_sum(..., clients=ids)` in process (row i is
client `ids[i]`), and a Flower node for its own row (`fl.flower_engine`: the node's partition id, never an
id the server sends). Outside such a block row i is client i: a fixed set of clients in a fixed order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType

_IDS: ContextVar[Mapping[int, int]] = ContextVar("client ids of the round's rows", default=MappingProxyType({}))


@contextlib.contextmanager
def client_ids(ids: Mapping[int, int]) -> Iterator[None]:
    """Within the block, row i of the round being built is client `ids[i]` (rows not in `ids`: client i).

    Raises:
        ValueError: if a row or an id is not an int >= 0, or two rows share an id.
    """
    for row, cid in ids.items():
        if not isinstance(row, int) or not isinstance(cid, int) or row < 0 or cid < 0:
            raise ValueError(f"client ids map rows to ids, both ints >= 0; found {row!r} -> {cid!r}")
    if len(set(ids.values())) != len(ids):
        raise ValueError(f"client ids must be distinct, found {sorted(ids.values())}")
    token = _IDS.set(MappingProxyType(dict(ids)))
    try:
        yield
    finally:
        _IDS.reset(token)


def client_id(row: int) -> int:
    """The persistent id of the client at `row` in the round being built (see `client_ids`)."""
    return _IDS.get().get(row, row)
