"""Bundled data, partitions, the synthetic generator and the file loader."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl.datasets import dirichlet, iid, load, load_file, synthetic


def test_bundled_data_sets_load_without_network():
    cancer, digits = load("breast_cancer"), load("digits")
    assert cancer.x.shape == (569, 30) and cancer.num_classes == 2 and set(np.unique(cancer.y)) == {0, 1}
    assert digits.x.shape == (1797, 64) and digits.num_classes == 10 and 0 <= digits.x.min() and digits.x.max() == 1.0
    z = cancer.standardized()
    assert np.allclose(z.x.mean(axis=0), 0, atol=1e-5) and np.allclose(z.x.std(axis=0), 1, atol=1e-4)
    with pytest.raises(ValueError, match="unknown data set"):
        load("mnist")


@settings(max_examples=30, deadline=None)
@given(clients=st.integers(1, 50), seed=st.integers(0, 2**32))
def test_iid_is_a_balanced_partition(clients, seed):
    y = load("digits").y
    parts = iid(y, clients, seed=seed)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@settings(max_examples=20, deadline=None)
@given(clients=st.integers(2, 30), alpha=st.sampled_from([0.05, 0.5, 5.0]), seed=st.integers(0, 2**32))
def test_dirichlet_is_a_partition_and_skews_with_small_alpha(clients, alpha, seed):
    y = load("digits").y
    parts = dirichlet(y, clients, alpha=alpha, seed=seed)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
    assert min(map(len, parts)) >= 1


def test_small_alpha_concentrates_labels():
    y = load("digits").y

    def mean_top_share(alpha):
        parts = dirichlet(y, 10, alpha=alpha, seed=3)
        return np.mean([np.bincount(y[p], minlength=10).max() / len(p) for p in parts])

    assert mean_top_share(0.05) > 0.6 > 0.25 > mean_top_share(100.0)


def test_synthetic_clients_differ_and_are_reproducible():
    a, b = synthetic(4, 200, alpha=1.0, beta=1.0, seed=5), synthetic(4, 200, alpha=1.0, beta=1.0, seed=5)
    assert all(np.array_equal(p.x, q.x) and np.array_equal(p.y, q.y) for p, q in zip(a, b))
    means = np.stack([c.x.mean(axis=0) for c in a])
    assert np.linalg.norm(means[0] - means[1]) > 1.0


def test_loader_reads_npz_and_csv(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = np.array([0, 1, 2, 1])
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    got = load_file(tmp_path / "mine.npz")
    assert np.array_equal(got.x, x) and np.array_equal(got.y, y) and got.num_classes == 3
    (tmp_path / "mine.csv").write_text("a,b,c,label\n" + "\n".join(",".join(map(str, [*row, label])) for row, label in zip(x, y)))
    got = load_file(tmp_path / "mine.csv")
    assert np.array_equal(got.x, x) and np.array_equal(got.y, y)


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("bad.csv", "1,2,0\n3,x,1\n", r"bad.csv:2: non-numeric"),
        ("ragged.csv", "1,2,0\n3,1\n", "same number"),
        ("labels.csv", "1,2,0.5\n", "non-negative integers"),
        ("data.txt", "1,2\n", "expected a .npz or .csv"),
    ],
)
def test_loader_errors_name_the_problem(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=match):
        load_file(tmp_path / name)


def test_synthetic_and_user_files_are_reachable_from_the_config(tmp_path):
    from fl.datasets import federate
    from fl.experiment import ExperimentConfig, local_datasets, run_experiment

    config = ExperimentConfig(data="synthetic", partition="natural", synthetic_alpha=0.5, synthetic_beta=0.5, synthetic_samples=60,
                              clients=5, rounds=2, stack="plain", model="logreg")
    local, _ = local_datasets(config)
    generated = synthetic(5, 60, alpha=0.5, beta=0.5, seed=0)
    train, _, parts = federate("synthetic", 5, partition="natural", alpha=0.5, test_fraction=0.2, seed=0, synthetic_alpha=0.5,
                               synthetic_beta=0.5, synthetic_samples=60)
    assert sum(len(d.y) for d in local) == len(train.y) == 240
    pooled = np.concatenate([g.x for g in generated])
    raw = pooled[np.random.default_rng(0).permutation(len(pooled))[:240]]  # the training split of `split`, seed 0
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    for mine, source in zip(local, generated):  # natural: client k holds samples of generator client k only
        back = mine.x * std + mean
        assert 0 < len(mine.y) <= 60 and all(np.abs(source.x - row).max(axis=1).min() < 1e-4 for row in back)
    assert len(run_experiment(config).rounds) == 2
    cancer = load("breast_cancer")
    rows = "\n".join(",".join(map(str, [*x, y])) for x, y in zip(cancer.x[:120], cancer.y[:120]))
    (tmp_path / "mine.csv").write_text("f" + ",f" * 30 + "\n" + rows)
    np.savez(tmp_path / "mine.npz", x=cancer.x[:120], y=cancer.y[:120])
    for name in ("mine.csv", "mine.npz"):
        result = run_experiment(ExperimentConfig(data=str(tmp_path / name), clients=4, rounds=1, stack="plain"))
        assert result.rounds[0].accuracy > 0.5
    with pytest.raises(ValueError, match="data: no file"):
        ExperimentConfig(data=str(tmp_path / "absent.npz"))
    with pytest.raises(ValueError, match="data must be one of"):
        ExperimentConfig(data="mnist")
    with pytest.raises(ValueError, match="partition 'natural' needs data='synthetic'"):
        ExperimentConfig(partition="natural")


def test_the_bundled_ill_conditioned_task_is_its_generators_output():
    from fl.data.make_ill_conditioned import generate

    x, y = generate()
    data = load("ill_conditioned")
    assert np.array_equal(data.x, x) and np.array_equal(data.y, y) and data.num_classes == 2
    assert data.x.shape == (4000, 20) and abs(y.mean() - 0.5) < 0.03


@pytest.mark.slow
def test_sign_flipping_at_20_percent_moves_plain_averaging_by_more_than_10_points_on_ill_conditioned():
    """The README's sweep (the CLI's defaults: an MLP, half the clients a round, 12 rounds), one seed: the attack
    scales the mean update by 0.6 and delays learning the slow direction."""
    from fl.experiment import run_experiment
    from fl.run_commands import build_config

    def final(byzantine):
        sets = ["data=ill_conditioned", "stack=plain", "clients=20", "rounds=12", "attack=sign_flipping", f"byzantine={byzantine}"]
        return run_experiment(build_config(None, sets)).rounds[-1].accuracy

    assert final(0.0) - final(0.2) > 0.10
