"""Review 16 (4): the cut of a sparse SecAgg+ graph by claimed drops (review 15 break 4) and the colluder bound it now states.

Held. With the real clients and server (review 15's `_cut_round`: one colluder at the start of each run of k/2 graph positions,
the run's honest clients' masked inputs discarded), the cut works for k/2 odd (k = 6, 10), three runs, and a run that wraps past
position n - 1, and each time the report's colluder bound c = t - k/2 - 1 stays below the one corrupt neighbour the attack needs.
And by exhaustion on small rings (every assignment of n positions to live honest / corrupt / claimed-dropped honest, runs of any
length, corrupt clients anywhere): every assignment from which the server learns a partial sum gives some honest client more than
c corrupt neighbours, and every such assignment holds two disjoint, non-adjacent runs of k/2 positions with t - k/2 corrupt
clients each, the event `claimed_cut_log2`'s union bound counts (so for_clients' bound misses no cut of this model). The model: the server learns sum(A) for a component A of the live honest clients once the corrupt and dropped
ones are cut out, when every live honest client has t answering neighbours (live honest or corrupt: its self-mask seed) and every
dropped client next to a live one has t too (its mask key). It does not model a server that also sends different survivor lists
to different clients (the t > (k + c)/2 attack), which needs 2t - k > c corrupt neighbours of one client by itself.
"""

import itertools

import numpy as np
import pytest

from protocols.masking.graph import colluder_bound
from secagg import Ring
from tests.protocols.test_review15_masking import _cut_round


@pytest.mark.parametrize("n, k, windows", [(14, 6, [0, 7]), (21, 6, [0, 7, 14]), (20, 8, [18, 8]), (24, 10, [0, 12])],
                         ids=["k=6 (k/2 odd)", "three runs", "a run wrapping past n - 1", "k=10"])
def test_the_cut_needs_more_corrupt_neighbours_of_one_client_than_the_report_allows(n, k, windows):
    t = k // 2 + 1  # one colluder a run suffices: t - k/2 = 1
    inputs, components, computed, c = _cut_round(n, k, t, windows=windows, seed=5, active=True)
    assert len(components) == len(windows) and all(len(comp) >= 2 for comp in components)
    for comp, value in zip(components, computed):
        assert np.array_equal(value, Ring(32).sum(inputs[comp])), "the attack is real: the server's partial sum"
    assert c == t - k // 2 - 1 == 0, "the client next to a run has 1 corrupt neighbour (the run's colluder), above the stated c"


def _cuts(n: int, k: int, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every assignment (0 live honest, 1 corrupt, 2 claimed-dropped honest) of H(k, n)'s positions, as (corrupt positions,
    whether it lets the server learn a partial sum (see the module), the adjacency matrix)."""
    adj = np.zeros((n, n), dtype=np.int64)
    for j in range(n):
        for o in range(1, k // 2 + 1):
            adj[j, (j + o) % n] = adj[j, (j - o) % n] = 1
    states = np.array(list(itertools.product(range(3), repeat=n)), dtype=np.int8)
    live, corrupt, dropped = states == 0, states == 1, states == 2
    answering = (live | corrupt).astype(np.int64) @ adj
    seeds_open = np.all(~live | (answering >= t), axis=1)
    keys_open = np.all(~(dropped & ((live.astype(np.int64) @ adj) > 0)) | (answering >= t), axis=1)
    label = np.where(live, np.arange(n)[None, :], n)
    for _ in range(n):  # components of the live honest clients: min-label propagation along live-live edges
        neighbour_min = np.where(live[:, None, :] & (adj[None] > 0), label[:, None, :], n).min(axis=2)
        label = np.where(live, np.minimum(label, neighbour_min), n)
    parts = np.array([len(set(row[row < n].tolist())) for row in label])
    return corrupt, seeds_open & keys_open & (parts >= 2), adj


@pytest.mark.parametrize("k, t", [(4, 3), (4, 4), (6, 5)])  # the first two reach c + 1: the bound is tight
def test_no_assignment_of_a_small_ring_cuts_it_within_the_stated_colluders(k, t):
    corrupt, cut, adj = _cuts(10, k, t)
    most = np.where(corrupt, 0, corrupt.astype(np.int64) @ adj).max(axis=1)  # an honest client's corrupt neighbours, at most
    fewest, c = int(most[cut].min()), colluder_bound(k, t, True, sparse=True)
    assert fewest > c, f"H({k}, 10), t={t}: a cut with {fewest} corrupt neighbours of any client, stated c={c}"


def test_every_cut_of_a_small_ring_is_in_the_union_bounds_event():
    """`claimed_cut_log2` counts two disjoint runs of k/2 positions, not adjacent, each holding t - k/2 corrupt clients: every
    assignment that cuts H(4, 10) at t = 3 (runs of any length, corrupt clients anywhere) has such a pair."""
    n, k, t = 10, 4, 3
    corrupt, cut, _ = _cuts(n, k, t)
    run, need = k // 2, t - k // 2
    full = np.stack([corrupt[:, [(p + j) % n for j in range(run)]].sum(axis=1) >= need for p in range(n)], axis=1)
    pair = np.zeros(len(cut), dtype=bool)
    for p, q in itertools.permutations(range(n), 2):
        if (q - p) % n > run and (p - q) % n > run:  # disjoint with a position between them on both sides
            pair |= full[:, p] & full[:, q]
    assert cut.sum() > 0 and not np.any(cut & ~pair)
