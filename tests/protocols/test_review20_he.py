"""Review 20: attacks on review 19's HE fixes (the key holder moves its model only with a release its ledger recorded;
unusable box keys; the build checks claimed equal to the clients' run-time refusal for clipped inputs).

Strict xfails are breaks (their bodies pass once fixed); the others are attacks that held, kept as regressions.
"""

import numpy as np

import protocols  # noqa: F401  registers every layer
from protocols import secure_sum
from protocols.core.stack import StackContext, build, parse
from secagg.he import ckks_headroom, fresh_error_bound
from secagg.he_params import preset


def _edge_clip(n: int) -> float:
    """The largest clip a `clip > ckks` stack of n participants builds with: n x clip + (n + 2) x error just below the
    headroom of ckks-8192-sum (the sum check binds for n >= 2)."""
    params = preset("ckks-8192-sum")
    limit, error = ckks_headroom(params), fresh_error_bound(params)
    clip = (limit - (n + 2) * error) / n
    while not n * clip + (n + 2) * error < limit:
        clip = float(np.nextafter(clip, 0.0))
    return clip


def test_a_stack_that_builds_is_not_refused_for_an_honestly_clipped_update():
    """Was a break (review 20): L2Clip's x * (clip / ||x||) could leave a coordinate one ulp past the clip; the clip layer clips that rounding off. `check_build_headroom` promises "a stack that builds is not refused by its clients for its clip". Its property test
    (review 19) checks rows equal to the clip; an honest row comes out of `L2Clip.encode`, x * (clip / ||x||), which for
    an axis-aligned update of 269575.13 (3 participants, the largest clip that builds, 174762.666...) is clip + 1 ulp:
    the client's `check_encoding`, the same strict inequality, refuses it and the round aborts for an honest input."""
    n = 3
    clip = _edge_clip(n)
    stack = build(parse(f"clip(bound={clip!r}) > ckks(min_clients=1)"), StackContext(dim=4, participants=n))
    rows = np.zeros((n, 4))
    rows[0, 0] = 269575.12889767  # found by a scan: fl(a * fl(clip / a)) = nextafter(clip, inf)
    assert rows[0, 0] * (clip / rows[0, 0]) > clip  # the attack's premise: the scaling formula lands one ulp past the clip
    assert stack.encode(0, rows[0], None)[0] <= clip  # the clip layer takes the ulp off
    out = secure_sum(rows, protocol=stack, seed=20)
    assert np.allclose(out.result, [clip, 0, 0, 0], atol=1e-2)
