"""Review round 2 (issue 15): central DP's sensitivity when Byzantine clients choose their own message.

Claim (protocols/layers/central_noise.py, recipes.central_dp): the trusted server adds N(0, (z s)**2) with
s = rule_sensitivity(rule, n, f, C), "this needs every input clipped, not only the neighbour's". The clip is
`L2Clip.encode`, a client-side step; the server of the clear protocol takes each client's vector as sent.
Attack: two Byzantine clients (f = 2 of n = 5) send the same vector B of norm 3.1 without clipping (Krum's
n - f - 1 neighbours keep B within a few C of an honest update, so B must stay near, found by a hill climb).
With the target's update Krum picks the target; zeroed, it picks B: the released output moves by 4.1, the
noise is scaled to s = 2 C. (The in-process experiment clips every row, attackers' too, so its runs are not affected.)
"""

import struct

import numpy as np

from protocols import secure_sum
from protocols.core.wire import SERVER, Frame, decode_frame, encode_frame
from protocols.layers.central_noise import rule_sensitivity
from protocols.layers.recipes import central_dp
from protocols.robust.layer import PlainRobust

D, Z = 2, 1e-6


def _byzantine(vector: np.ndarray, senders: set[int]):
    payload = struct.pack(">I", len(vector)) + np.asarray(vector, dtype="<f4").tobytes()

    def tamper(src, dst, frame):
        if src in senders and dst == SERVER:
            f = decode_frame(frame, party="test", stage="test")
            return [encode_frame(Frame(f.kind, f.session, f.sender, f.recipient, payload))]
        return [frame]

    return tamper


def _release(x: np.ndarray, tamper) -> np.ndarray:
    stack = central_dp(PlainRobust(rule="krum", f=2), clip=1.0, noise_multiplier=Z)
    return secure_sum(x.astype(np.float32), protocol=stack, seed=4, tamper=tamper).result


def test_central_dp_krum_change_within_noise_scale_against_unclipped_byzantines():
    big = np.array([-3.0623, -0.5849])  # norm 3.12, sent by clients 1 and 2 instead of their clipped updates
    x = np.array([[-0.9998, 0.0189], [0.1, 0.0], [0.0, 0.1], [0.8032, -0.5957], [0.9196, 0.3928]])  # honest rows: norm <= 1
    neighbour = x.copy()
    neighbour[0] = 0.0
    tamper = _byzantine(big, {1, 2})
    change = float(np.linalg.norm(_release(x, tamper) - _release(neighbour, tamper)))
    s = rule_sensitivity("krum", 5, 2, 1.0)
    assert change <= s + 10 * Z * s, f"the released output moved by {change:.3g}; the noise is scaled to sensitivity {s}"


def test_central_dp_refuses_an_inner_rule_clipping_at_another_bound():
    import pytest

    from protocols.layers.central_noise import CentralGaussian

    with pytest.raises(ValueError, match="clip"):
        CentralGaussian(1.0, 1.0, PlainRobust(rule="krum", f=1, clip=2.0))
    assert CentralGaussian(1.0, 1.0, PlainRobust(rule="krum", f=1)).inner.clip == 1.0  # the server clips every row itself
