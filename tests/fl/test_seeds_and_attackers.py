"""Separate data, model and protocol seeds; an exact number of attackers a round; the rule's f, the
attack parameters, label flipping and mislabelling kinds as configuration."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.adversaries import attack, byzantine_counts, draw_round, mislabel
from fl.experiment import ExperimentConfig, local_datasets, run_experiment
from fl.models import get_flat

SMALL = dict(data="breast_cancer", model="logreg", clients=10, rounds=2, stack="plain", dropout=0.0)


def _trace(result):
    return [(r.accuracy, r.loss, r.included, r.byzantine) for r in result.rounds]


def test_unset_seeds_default_to_seed_and_each_seed_drives_only_its_part():
    base = ExperimentConfig(**{**SMALL, "stack": "secagg+", "dropout": 0.3, "sample_fraction": 0.6, "seed": 3})
    explicit = ExperimentConfig(**{**SMALL, "stack": "secagg+", "dropout": 0.3, "sample_fraction": 0.6, "seed": 3, "data_seed": 3, "model_seed": 3, "protocol_seed": 3})
    assert base.seeds == {"data": 3, "model": 3, "protocol": 3} and _trace(run_experiment(base)) == _trace(run_experiment(explicit))
    data, model = local_datasets(base)
    for kind in ("data", "model", "protocol"):
        other = ExperimentConfig(**{**SMALL, "stack": "secagg+", "dropout": 0.3, "sample_fraction": 0.6, "seed": 3, f"{kind}_seed": 11})
        data2, model2 = local_datasets(other)
        same_data = all(np.array_equal(a.y, b.y) and np.array_equal(a.x, b.x) for a, b in zip(data, data2))
        assert same_data == (kind != "data")
        assert np.array_equal(get_flat(model), get_flat(model2)) == (kind != "model")
    dropped = [run_experiment(ExperimentConfig(**{**SMALL, "stack": "secagg+", "dropout": 0.3, "rounds": 3, "protocol_seed": s})) for s in (0, 1, 2)]
    assert len({tuple(r.included for r in res.rounds) for res in dropped}) > 1  # the protocol seed draws the dropouts


@settings(max_examples=60, deadline=None)
@given(clients=st.integers(3, 60), data=st.data())
def test_every_round_has_exactly_the_stated_attackers(clients, data):
    m = data.draw(st.integers(3, clients))
    count = data.draw(st.integers(0, m - 1))
    population, per_round = byzantine_counts(clients, m, 0.0, count)
    assert per_round == count and count <= population <= clients - (m - count)
    fraction = data.draw(st.floats(0, 0.49))
    population_f, per_round_f = byzantine_counts(clients, m, fraction, None)
    byzantine = np.random.default_rng(clients).permutation(clients)[:population]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    for _ in range(3):
        chosen = draw_round(rng, clients, m, byzantine, count)
        assert len(set(chosen.tolist())) == m == len(chosen) and np.all(np.diff(chosen) > 0)
        assert np.isin(chosen, byzantine).sum() == count
    byzantine_f = np.arange(population_f)
    assert np.isin(draw_round(rng, clients, m, byzantine_f, per_round_f), byzantine_f).sum() == per_round_f
    with pytest.raises(ValueError, match="cannot draw"):
        draw_round(rng, clients, m, byzantine[:count], count + 1)
    seed = data.draw(st.integers(0, 2**32 - 1))  # the sampling runs had before exact counts: kept where it was already exact
    old = np.sort(np.random.default_rng(seed).choice(clients, size=m, replace=False))
    assert np.array_equal(draw_round(np.random.default_rng(seed), clients, m, np.array([], dtype=np.int64), 0), old)
    everyone = np.sort(np.random.default_rng(seed).choice(clients, size=clients, replace=False))
    assert np.array_equal(draw_round(np.random.default_rng(seed), clients, clients, byzantine[:count], count), everyone)


@pytest.mark.parametrize("fields, per_round", [({"byzantine": 0.2, "sample_fraction": 0.5}, 1), ({"attackers": 2, "sample_fraction": 0.5}, 2),
                                               ({"byzantine": 0.3}, 3)])
def test_the_experiment_puts_exactly_that_many_attackers_in_each_round_and_f_is_its_own_field(fields, per_round):
    config = ExperimentConfig(**{**SMALL, "stack": "robust", "rule": "trimmed_mean", "rounds": 4, "attack": "sign_flipping", **fields})
    result = run_experiment(config)
    assert config.attackers_per_round == per_round and all(len(r.byzantine) == per_round for r in result.rounds)
    assert len({r.byzantine for r in result.rounds}) > 1 or config.participants == config.clients  # sampled afresh
    rule_f = next(r.guarantee.parameters["f"] for r in result.rounds[-1].reports if "f" in r.guarantee.parameters)
    assert rule_f == max(1, per_round)
    pinned = run_experiment(ExperimentConfig(**{**SMALL, "stack": "robust", "rule": "trimmed_mean", "f": 2, **fields}))
    assert next(r.guarantee.parameters["f"] for r in pinned.rounds[-1].reports if "f" in r.guarantee.parameters) == 2
    with pytest.raises(ValueError, match="f must be in"):
        ExperimentConfig(**{**SMALL, "f": 5})
    with pytest.raises(ValueError, match="byzantine or attackers"):
        ExperimentConfig(**{**SMALL, "byzantine": 0.2, "attackers": 1})


def test_attack_parameters_reach_the_attacks():
    honest = np.random.default_rng(0).normal(1.0, 2.0, size=(30, 400))
    rng = np.random.default_rng(1)
    assert np.allclose(attack("alie", honest, 3, n=33, rng=rng, alie_z=0.0), honest.mean(axis=0))
    assert np.allclose(attack("alie", honest, 3, n=33, rng=rng, alie_z=2.0), honest.mean(axis=0) - 2.0 * honest.std(axis=0))
    assert np.allclose(attack("ipm", honest, 2, n=32, rng=rng, ipm_epsilon=3.0), -3.0 * honest.mean(axis=0))
    assert np.std(attack("gaussian", honest, 50, n=80, rng=rng, gaussian_sigma=5.0)) == pytest.approx(5.0, rel=0.05)
    with pytest.raises(ValueError, match="label_flipping"):
        attack("label_flipping", honest, 2, n=32, rng=rng)


def test_label_flipping_clients_train_on_flipped_labels_and_nobody_else_does():
    clean, _ = local_datasets(ExperimentConfig(**{**SMALL, "byzantine": 0.3, "attack": "alie"}))
    flipped, _ = local_datasets(ExperimentConfig(**{**SMALL, "byzantine": 0.3, "attack": "label_flipping"}))
    changed = [c for c, (a, b) in enumerate(zip(clean, flipped)) if not np.array_equal(a.y, b.y)]
    assert len(changed) == 3 and all(np.array_equal(flipped[c].y, 1 - clean[c].y) for c in changed)
    result = run_experiment(ExperimentConfig(**{**SMALL, "byzantine": 0.3, "attack": "label_flipping"}))
    assert all(set(r.byzantine) == set(changed) for r in result.rounds)


@settings(max_examples=30, deadline=None)
@given(classes=st.integers(2, 10), fraction=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_mislabelling_kinds(classes, fraction, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=400)
    pair = mislabel(y, fraction, classes, rng=rng, kind="class_pair")
    for c in range(classes):
        members = y == c
        moved = pair[members] != c
        assert moved.sum() == round(fraction * members.sum()) and np.all(pair[members][moved] == (c + 1) % classes)
    per_class = mislabel(y, fraction, classes, rng=rng, kind="per_class")
    assert per_class.min() >= 0 and per_class.max() < classes
    for c in range(classes):
        assert (per_class[y == c] != c).sum() <= round(min(1.0, 2 * fraction) * (y == c).sum())
    with pytest.raises(ValueError, match="kind"):
        mislabel(y, fraction, classes, rng=rng, kind="random")


def test_per_class_rates_differ_between_classes():
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(10), 1000)
    out = mislabel(y, 0.3, 10, rng=rng, kind="per_class")
    rates = np.array([(out[y == c] != c).mean() for c in range(10)])
    assert rates.std() > 0.05 and abs(rates.mean() - 0.3) < 0.15 and np.all(out[out != y] != y[out != y])
