"""Krum and Multi-Krum over CKKS ciphertexts, with the non-colluding key holder of `he_aggregation`.

    client i:   Enc(x_i) (preset ckks-8192: depth 2), signed                     -> aggregator
    aggregator: encrypted squared distances of all pairs (`secagg.he_distances`)  -> key holder
    key holder: checks the manifest, decrypts the m(m-1)/2 distances, rounds and floods them
    aggregator: runs the rule on the released distances; asks for the sum of the selected inputs
    key holder: checks that the selection is the rule's on the distances it released, recomputes
                the sum of the selected signed inputs, decrypts, rounds and floods it

The result is the sum over `Output.included` = the selected clients (one for Krum: the key holder
then releases one client's update, which is what Krum outputs). The aggregator needs Galois keys
(about 33 MB at N = 8192), generated once with the key holder's keys.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from protocols.driver import CostMeter
from protocols.errors import BelowThreshold
from protocols.he_aggregation import HeAggregation
from protocols.he_key_holder import SELECTION_RULES
from protocols.he_messages import DecryptRequest, Target
from protocols.report import LayerReport, Output
from protocols.robust.robustness import kappa, lower_bound
from protocols.robust.rules import krum_select
from protocols.schedule import DropoutSchedule
from protocols.transport import InProcessTransport
from protocols.wire import Writer
from secagg.he import total
from secagg.he_distances import all_pairs, pairwise
from secagg.randomness import Randomness


@dataclass
class CKKSRobust(HeAggregation):
    """`rule` (krum or multi_krum, averaging `m` inputs, default m - f) over CKKS-encrypted float inputs
    of L2 norm <= `norm_bound` (the release noise on distances is sized from it)."""

    rule: str = "multi_krum"
    f: int = 1
    m: int | None = None
    norm_bound: float = 1.0
    preset: str = "ckks-8192"
    name: str = "ckks-robust"
    needs_galois = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rule not in SELECTION_RULES.values():
            raise ValueError(f"rule over CKKS must be one of {sorted(SELECTION_RULES.values())}, found {self.rule!r}")
        if self.params.scheme != "ckks" or self.params.depth < 2:
            raise ValueError(f"CKKSRobust needs a CKKS preset of depth >= 2, found {self.preset!r}")
        if self.f < 0 or not self.norm_bound > 0:
            raise ValueError(f"need f >= 0 and norm_bound > 0, found {self.f}, {self.norm_bound}")

    @property
    def splits(self) -> bool:
        return False  # not yet: its key holder exchange has two requests

    def run(self, inputs: np.ndarray, dropouts: DropoutSchedule, rng: Randomness, transport: InProcessTransport) -> Output:
        x = self.check_inputs(inputs)
        n, d = x.shape
        meter = CostMeter(n)
        public = self.keys.public
        session, signers, collector, rejected = self._collect(x, lambda row: public.encrypt(row).to_bytes(), dropouts, rng, transport, meter)
        ids = sorted(collector.inputs)
        m = len(ids)
        if m <= 2 * self.f or m < self.min_clients:
            raise BelowThreshold(f"{m} inputs, the rule needs > 2f = {2 * self.f} (and >= {self.min_clients})", party="server", stage="aggregate")
        holder = self._key_holder(rng, session, signers, d, norm_bound=self.norm_bound)
        start = time.thread_time()
        with meter.server():
            pairs = all_pairs(m)
            scalars = pairwise(public, [collector.vectors[u] for u in ids], pairs)
            request = DecryptRequest(Target.SCALARS, collector.manifest(), scalars.to_bytes(), extra=len(pairs).to_bytes(4, "big"))
        distance_seconds = time.thread_time() - start
        released = self._carry(holder, self._frame(request, session), session, transport, meter, len(pairs))
        with meter.server():
            dist = np.zeros((m, m))
            dist[np.triu_indices(m, 1)] = released
            m_sel = 1 if self.rule == "krum" else (self.m or m - self.f)
            chosen = krum_select(dist + dist.T, self.f, m_sel)
            selected = [ids[i] for i in chosen]
            rule_code = next(k for k, v in SELECTION_RULES.items() if v == self.rule)
            extra = Writer().u8(rule_code).u32(self.f).u32(m_sel).getvalue()
            payload = b"" if self.recompute else total([collector.vectors[u] for u in selected]).to_bytes()
            second = self._request(collector, Target.SELECTED_SUM, payload, clients=selected, extra=extra)
        result = self._carry(holder, self._frame(second, session), session, transport, meter, d)
        coefficient = kappa(self.rule, m, self.f)
        guarantee = self.guarantee(
            n, d, len(selected), holder.last_bound,
            server_learns=(f"the {len(pairs)} pairwise squared distances of the {m} inputs (rounded, flooded), the selected set and the "
                           "sum of the selected inputs; the key holder learns the same"),
            rule=self.rule, f=self.f, inputs=m, kappa="unknown" if coefficient is None else round(coefficient, 4),
            kappa_lower_bound=round(lower_bound(m, self.f), 4), encrypted_distance_seconds=round(distance_seconds, 4),
            distance_error_bound=holder.distance_bound, **self.sizes(collector, d), distance_release_noise_std=holder.release_noise_std(holder.distance_bound),
        )
        guarantee = replace(guarantee, dropout_tolerance=max(n - 2 * self.f - 1, 0), notes=guarantee.notes + (
            "; an outer DP noise layer accounts for the output only: the released distances and the selection are not covered"))
        report = LayerReport(self.name, meter.cost(transport, rounds=3), guarantee)
        return Output(result, tuple(selected), (report,), tuple(rejected))
