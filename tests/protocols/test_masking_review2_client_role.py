"""Second-round review, issue 14: client_role's checks of the server's public parameters.

Claim (_PairwiseMasking.client_role): "Client i's role from the server's public parameters, which must be the
ones this client's own configuration gives (n, k, t, bits, d = len(row)): a server cannot lower the threshold.\""""

import numpy as np
import pytest

from protocols.core.errors import Refused
from protocols.masking.secagg import SecAgg, SecAggPlus

SEED, SESSION = "ab" * 32, "cd" * 8


def _public(n, k, t, d=4, bits=32):
    return {"n": n, "k": k, "t": t, "d": d, "bits": bits, "session": SESSION, "graph_seed": SEED}


def _role(stack, public, i=0):
    return stack.client_role(i, np.zeros(public["d"], dtype=stack.ring.dtype), public, rng=None, measurements={})


def test_secaggplus_client_refuses_another_n_and_a_lower_t():
    plus = SecAggPlus.for_clients_or_complete(100, dropout=0.05)
    k, t = plus.degree_and_threshold(100)
    with pytest.raises(Refused):
        _role(plus, _public(100, k, t - 1))
    with pytest.raises(Refused):
        _role(plus, _public(20, k, t))  # n is pinned by the client's own stack
    for bad in ({"n": 100.0}, {"t": True}, {"graph_seed": "zz" * 32}, {"session": "cd" * 7}):
        with pytest.raises(Refused):
            _role(plus, {**_public(100, k, t), **bad})


def test_secagg_server_cannot_lower_the_threshold_by_announcing_fewer_clients():
    """SecAgg (complete graph) derives k and t from the n the server announces: a server that tells
    client 0 "n = 3" (itself and two Sybils) gets t = 2 where the real round of 101 clients has t = 51.
    Fixed by pinning: `SecAgg(clients=101)` refuses another n. Unpinned, the weaker claim holds and is stated."""
    assert "lowers t: pin it" in SecAgg.__doc__
    stack = SecAgg(bits=32, clients=101)
    real_k, real_t = stack.degree_and_threshold(101)
    with pytest.raises(Refused):
        _role(stack, _public(101, real_k, real_t - 1))  # held: t below what n = 101 gives
    with pytest.raises(Refused, match="n"):
        _role(stack, _public(3, 2, 2))  # the attack: a smaller announced n lowers t to 2
