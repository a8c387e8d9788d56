"""Byzantine participants that deviate at the protocol level, from the config (`byzantine_protocol`)."""

from __future__ import annotations

import pytest

from fl.config import config_from
from fl.experiment import DeviationUnsupported, ExperimentConfig, run_experiment

TINY = dict(data="breast_cancer", model="logreg", clients=10, rounds=2, attackers=2)


def _run(**kw):
    return run_experiment(ExperimentConfig(**{**TINY, **kw}))


def test_wrapping_clients_on_two_server_are_rejected_by_name_and_the_rounds_complete_with_the_rest():
    result = run_experiment(config_from({**TINY, "stack": "two-server", "rule": "multi_krum", "byzantine_protocol": "shares-wrapped"}))
    for r in result.rounds:
        assert not r.aborted and r.included
        assert len(r.deviations) == 2 and {d["client"] for d in r.deviations} == set(r.byzantine)
        for d in r.deviations:
            assert d["rejected"].startswith("InvalidInput: client %d at range check" % d["position"]) and not d["included"]
            assert d["position"] not in r.included


def test_skip_clip_on_two_server_is_rejected_by_the_norm_check_and_clipped_attackers_are_not():
    raw = _run(stack="two-server", rule="multi_krum", attack="gaussian", byzantine_protocol="skip-clip")
    for r in raw.rounds:
        assert not r.aborted
        assert all(d["rejected"].startswith(f"InvalidInput: client {d['position']} at norm check") for d in r.deviations), r.deviations
    honest_code = _run(stack="two-server", rule="multi_krum", attack="gaussian")  # same attack, clipped by the honest client code
    assert all(r.deviations == () and not any(rep.guarantee.parameters.get("rejected") for rep in r.reports) for r in honest_code.rounds)


@pytest.mark.parametrize("stage, summed", [("share_keys", False), ("unmasking", True)])
def test_a_deliberate_drop_is_survived_by_secagg_plus(stage, summed):
    """Before its masked input a dropper is left out; after it (unmasking) its input is in the sum and the
    others' shares remove its masks."""
    result = _run(stack="secagg+", byzantine_protocol="drop", byzantine_drop_stage=stage)
    for r in result.rounds:
        assert not r.aborted and len(r.included) == (10 if summed else 8)
        assert all(d["included"] == summed and d["rejected"] == "" for d in r.deviations) and len(r.deviations) == 2
        assert ({d["position"] for d in r.deviations} <= set(r.included)) == summed


@pytest.mark.parametrize("values, error, match", [
    ({"byzantine_protocol": "wrap"}, ValueError, "byzantine_protocol must be one of .* found 'wrap'"),
    ({"byzantine_protocol": "drop"}, ValueError, "byzantine_drop_stage must be one of .* found 'none' with byzantine_protocol 'drop'"),
    ({"byzantine_drop_stage": "unmasking"}, ValueError, "byzantine_drop_stage .* found 'unmasking' with byzantine_protocol 'none'"),
    ({"byzantine_protocol": "drop", "byzantine_drop_stage": "later"}, ValueError, "found 'later'"),
    ({"byzantine_protocol": "skip-clip", "attackers": None}, ValueError, "needs Byzantine clients"),
    ({"byzantine_protocol": "shares-wrapped", "stack": "secagg+"}, DeviationUnsupported, "stack 'secagg\\+' sends no additive shares"),
    ({"byzantine_protocol": "skip-clip", "stack": "robust"}, DeviationUnsupported, "stack 'robust' has no client-side clip layer"),
    ({"byzantine_protocol": "drop", "byzantine_drop_stage": "unmasking", "stack": "two-server"}, DeviationUnsupported, "ends at masked_input"),
])
def test_bad_deviation_configs_name_the_field_and_value(values, error, match):
    with pytest.raises(error, match=match):
        ExperimentConfig(**{**TINY, "stack": "two-server", **values})
