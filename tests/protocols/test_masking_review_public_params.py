"""Review attack on SecAgg(+) `client_role` (the Flower / remote client): public parameters from the server.

Claim attacked: client_role "Client i's role from the server's public parameters, which must be the ones
this client's own configuration gives (n, k, t, bits, d = len(row)) ... Raises: Refused"; standards: untrusted
input is validated before use, a bad message gives a typed error. The check compares int(public["n"]) but the
round is then built from the raw public["n"].
"""

import numpy as np
import pytest

from protocols import SecAggPlus
from protocols.core.errors import ProtocolError
from protocols.core.messages import Kind
from protocols.core.schedule import Stage
from protocols.core.wire import SERVER, Frame, Writer, encode_frame
from secagg import SeededRandomness


@pytest.mark.parametrize("n", [10.0, "10"], ids=["float", "string"])
def test_a_mistyped_n_is_refused_or_fails_typed(n):
    stack = SecAggPlus(n=10, k=4, t=3)
    row = np.zeros(3, dtype=np.uint32)
    public = {"n": n, "k": 4, "t": 3, "d": 3, "bits": 32, "session": "00" * 8, "graph_seed": "11" * 32}
    try:
        role = stack.client_role(0, row, public, SeededRandomness(1), {})
    except ProtocolError:
        return
    session = bytes(8)
    try:
        role.handle(encode_frame(Frame(Kind.REQUEST, session, SERVER, 0, Writer().u8(Stage.ADVERTISE_KEYS).getvalue())))
        role.handle(encode_frame(Frame(Kind.KEYS, session, SERVER, 0, Writer().entries({}).getvalue())))
    except ProtocolError:
        return
    except Exception as exc:  # noqa: BLE001 - the attack: any untyped failure
        pytest.fail(f"public n={n!r} passed client_role and crashed the client untyped: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("field, value", [("n", True), ("k", "4"), ("t", 3.0), ("d", None), ("bits", 32.0), ("session", "00" * 7),
                                          ("graph_seed", "zz" * 32), ("graph_seed", 17)])
def test_every_mistyped_public_parameter_is_refused_before_use(field, value):
    """Each public parameter of the wrong type or size is refused typed, naming it (a bool is no int here)."""
    from protocols.core.errors import Refused

    stack = SecAggPlus(n=10, k=4, t=3)
    public = {"n": 10, "k": 4, "t": 3, "d": 3, "bits": 32, "session": "00" * 8, "graph_seed": "11" * 32}
    stack.client_role(0, np.zeros(3, dtype=np.uint32), public, SeededRandomness(1), {})  # control: accepted as sent
    with pytest.raises(Refused, match=field):
        stack.client_role(0, np.zeros(3, dtype=np.uint32), {**public, field: value}, SeededRandomness(1), {})
