"""Review attacks on the SecAgg+ graph (protocols.masking.graph) and its active-mode seed (RoundSetup.graph_seed_from).

Claims attacked: graph.py "The permutation is a 4-round Feistel network over AES-128 (Luby-Rackoff: a
pseudorandom permutation)" (broken at n = 256 by the first test; the permutation is now the ranks of AES-CTR
words, `_SortedPermutation`, and the same distinguisher runs against it); masking_setup "SHA-256 over the session and every signed advertisement
... in id order. The server cannot change an honest entry (signed) ... each such change re-draws the
graph (one hash), it never sets it" (so the order in which the server lists advertisements is no lever).
"""

import numpy as np

from protocols.masking.graph import HararyGraph, _SortedPermutation
from protocols.masking.setup import RoundSetup
from secagg import Ring


def test_adjacent_positions_get_labels_like_a_random_permutation():
    """A distinguisher for the 4-round Feistel on 2 x 4-bit halves (n = 256): positions 2j and 2j + 1 differ in
    one input bit; with probability 1/16 the first round function collides on them, the difference then goes
    through unchanged, and their labels differ exactly in bit 0 about twice as often as for a random
    permutation (1/255). 1000 seeds x 128 pairs: uniform expectation 502 (sd 22); the Feistel gave 867."""
    n, seeds = 256, 1000
    even = np.arange(0, n, 2)
    hits = 0
    for s in range(seeds):
        p = _SortedPermutation(n, b"review" + s.to_bytes(4, "big"))
        hits += int(np.count_nonzero((p(even) ^ p(even + 1)) == 1))
    expected = seeds * len(even) / (n - 1)
    assert abs(hits - expected) < 6 * np.sqrt(expected), f"{hits} adjacent label pairs differ by 1, a random permutation gives {expected:.0f}"


def test_listing_order_is_no_lever_on_the_graph_seed():
    setup = RoundSetup(n=6, k=2, t=2, d=1, ring=Ring(32), active=True, session=b"review03")
    ads = {u: bytes([u]) * 128 for u in range(6)}
    reordered = dict(sorted(ads.items(), reverse=True))
    assert setup.graph_seed_from(ads) == setup.graph_seed_from(reordered)
    assert setup.graph_seed_from(ads) != setup.graph_seed_from({u: a for u, a in ads.items() if u != 3})


def test_one_clients_view_equals_the_servers_graph():
    for n, k in [(9, 4), (37, 6), (256, 20), (1000, 44)]:
        g = HararyGraph(n, k, b"review-seed")
        rows = g.all()
        for i in (0, n // 2, n - 1):
            assert g.neighbours(i) == rows[i] and len(rows[i]) == k and i not in rows[i]
            assert all(i in rows[j] for j in rows[i])
