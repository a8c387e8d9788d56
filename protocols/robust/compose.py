"""One call for a pre-aggregator followed by a rule, and the rule catalogue by name."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from protocols.robust import preaggregators, rules

RULES: dict[str, Callable[..., np.ndarray]] = {
    "mean": rules.mean,
    "coordinate_median": rules.coordinate_median,
    "trimmed_mean": rules.trimmed_mean,
    "geometric_median": rules.geometric_median,
    "krum": rules.krum,
    "multi_krum": rules.multi_krum,
    "centered_clipping": rules.centered_clipping,
}
PREAGGREGATORS: dict[str, Callable[..., np.ndarray]] = {"nnm": preaggregators.nnm, "bucketing": preaggregators.bucketing}


def aggregate(
    updates: np.ndarray, f: int, rule: str = "krum", *, pre: str | None = None, pre_params: dict | None = None, **rule_params
) -> np.ndarray:
    """rule(pre(updates, f, **pre_params), f, **rule_params); e.g. aggregate(x, 5, "multi_krum", pre="nnm").

    Raises:
        ValueError: for an unknown rule or pre-aggregator name, or what the rule itself refuses.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; known: {sorted(RULES)}")
    if pre is not None:
        if pre not in PREAGGREGATORS:
            raise ValueError(f"unknown pre-aggregator {pre!r}; known: {sorted(PREAGGREGATORS)}")
        updates = PREAGGREGATORS[pre](updates, f, **(pre_params or {}))
    return RULES[rule](updates, f, **rule_params)
