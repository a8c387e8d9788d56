"""Models, flat parameters, local training and evaluation."""

import numpy as np
import pytest

from fl.datasets import iid, load
from fl.models import build, get_flat, set_flat
from fl.training import LocalConfig, evaluate, local_update, local_updates


@pytest.mark.parametrize("name, data", [("logreg", "breast_cancer"), ("mlp", "breast_cancer"), ("cnn", "digits")])
def test_flat_parameters_roundtrip(name, data):
    ds = load(data)
    model = build(name, ds.x.shape[1], ds.num_classes, seed=1)
    flat = get_flat(model)
    set_flat(model, flat * 2)
    assert np.allclose(get_flat(model), flat * 2)
    with pytest.raises(ValueError, match="expected"):
        set_flat(model, flat[:-1])


def test_cnn_refuses_non_image_inputs_and_unknown_models():
    with pytest.raises(ValueError, match="8x8"):
        build("cnn", 30, 2)
    with pytest.raises(ValueError, match="unknown model"):
        build("resnet", 30, 2)


def test_local_update_lowers_the_clients_loss_and_is_reproducible():
    ds = load("breast_cancer").standardized()
    model = build("logreg", 30, 2, seed=0)
    params = get_flat(model)
    before, _ = evaluate(model, params, ds)
    delta = local_update(model, params, ds, LocalConfig(epochs=2, lr=0.05), seed=3)
    after, accuracy = evaluate(model, params + delta, ds)
    assert after < before and accuracy > 0.9
    assert np.array_equal(delta, local_update(model, params, ds, LocalConfig(epochs=2, lr=0.05), seed=3))


def test_fedsgd_step_is_minus_lr_times_the_gradient():
    ds = load("breast_cancer").standardized().subset(np.arange(50))
    model = build("logreg", 30, 2, seed=0)
    params = get_flat(model)
    small = local_update(model, params, ds, LocalConfig(epochs=1, batch_size=None, lr=1e-3), seed=0)
    large = local_update(model, params, ds, LocalConfig(epochs=1, batch_size=None, lr=2e-3), seed=0)
    assert np.allclose(large, 2 * small, rtol=1e-4, atol=1e-7)


def test_averaging_client_updates_trains_a_global_model():
    ds = load("breast_cancer").standardized()
    model = build("logreg", 30, 2, seed=0)
    params = get_flat(model)
    parts = iid(ds.y, 10, seed=0)
    for r in range(10):
        deltas = [local_update(model, params, ds.subset(p), LocalConfig(lr=0.1), seed=r * 10 + i) for i, p in enumerate(parts)]
        params = params + np.mean(deltas, axis=0)
    assert evaluate(model, params, ds)[1] > 0.95


def _clients(n, seed=0):
    ds = load("digits").standardized()
    return [ds.subset(p) for p in iid(ds.y, n, seed=seed)]


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_processes_give_the_bits_of_the_sequential_loop(workers):
    data = _clients(7)  # 7 clients over 2 or 3 workers: uneven blocks
    model = build("mlp", 64, 10, seed=4)
    params = get_flat(model)
    seeds = [11 * i + 5 for i in range(7)]
    config = LocalConfig(epochs=2, batch_size=16, lr=0.5, workers=workers)
    parallel = local_updates(model, params, data, config, seeds=seeds)
    loop = np.stack([local_update(model, params, d, config, seed=s) for d, s in zip(data, seeds)])
    assert parallel.dtype == np.float32 and parallel.shape == (7, len(params))
    assert np.array_equal(parallel, loop)
    assert not np.array_equal(parallel[0], parallel[1])  # rows are per client, not one repeated


def test_start_workers_spawns_the_pool_the_rounds_then_use_and_none_for_one_worker():
    import time

    from fl import training

    for pool in training._POOLS.values():
        pool.shutdown(wait=True)
    training._POOLS.clear()
    training.start_workers(LocalConfig(workers=1), 10)
    training.start_workers(LocalConfig(workers=3), 1)  # one client a round: trained here
    assert training._POOLS == {}
    training.start_workers(LocalConfig(workers=2), 10)
    assert list(training._POOLS) == [(2, 1)]
    pool = training._POOLS[2, 1]
    deadline = time.monotonic() + 60
    while len(pool._processes) < 2 and time.monotonic() < deadline:  # spawned in the background
        time.sleep(0.05)
    assert len(pool._processes) == 2
    spawned = set(pool._processes)
    data = _clients(4)
    model = build("mlp", 64, 10, seed=4)
    params = get_flat(model)
    config = LocalConfig(epochs=1, batch_size=16, lr=0.5, workers=2)
    rows = local_updates(model, params, data, config, seeds=[1, 2, 3, 4])
    assert training._POOLS[2, 1] is pool and set(pool._processes) == spawned  # the rounds reuse the started workers
    assert np.array_equal(rows, np.stack([local_update(model, params, d, config, seed=s) for d, s in zip(data, [1, 2, 3, 4])]))


def test_a_run_with_workers_ends_at_the_same_model_as_the_sequential_run(monkeypatch):
    import fl.experiment as experiment
    from fl.experiment import ExperimentConfig, run_experiment

    seen = []
    real = experiment.evaluate
    monkeypatch.setattr(experiment, "evaluate", lambda model, params, data: (seen.append(params.copy()), real(model, params, data))[1])

    def final_params(workers):
        seen.clear()
        config = ExperimentConfig(data="digits", model="mlp", clients=12, rounds=2, stack="secagg+", byzantine=0.2, attack="gaussian",
                                  dropout=0.1, local=LocalConfig(epochs=2, batch_size=16, lr=0.5, workers=workers))
        result = run_experiment(config)
        assert len(result.rounds) == 2 and len(seen) == 2
        return seen[-1]

    sequential = final_params(1)
    assert np.array_equal(final_params(2), sequential)
    assert not np.array_equal(sequential, get_flat(build("mlp", 64, 10, seed=0)))  # the model did train


def test_workers_run_the_configured_torch_threads_and_bad_counts_are_refused():
    import torch

    from fl.training import _pool

    assert _pool(2, 3).submit(torch.get_num_threads).result() == 3
    model = build("logreg", 64, 10)
    local_updates(model, get_flat(model), _clients(3), LocalConfig(threads=1, workers=1), seeds=[0, 1, 2])
    assert torch.get_num_threads() == 1
    for bad in ({"threads": 0}, {"workers": -1}):
        with pytest.raises(ValueError, match="threads"):
            LocalConfig(**bad)
    with pytest.raises(ValueError, match="one seed a client"):
        local_updates(model, get_flat(model), _clients(3), LocalConfig(), seeds=[0])


@pytest.mark.slow
def test_workers_with_several_threads_neither_hang_nor_change_a_bit():
    """The attack on fork: this process's OpenMP pool has run (2 threads), and a forked child would hang at its
    first parallel region; workers of a multi-thread configuration start from a fresh server instead."""
    import torch

    torch.set_num_threads(2)
    (torch.randn(256, 256) @ torch.randn(256, 256)).sum()
    data = _clients(5)
    model = build("mlp", 64, 10, seed=2)
    params = get_flat(model)
    config = LocalConfig(epochs=1, batch_size=16, lr=0.5, threads=2, workers=2)
    parallel = local_updates(model, params, data, config, seeds=list(range(5)))
    one_process = LocalConfig(epochs=1, batch_size=16, lr=0.5, threads=2, workers=1)
    sequential = local_updates(model, params, data, one_process, seeds=list(range(5)))
    assert np.array_equal(parallel, sequential)
    torch.set_num_threads(1)
