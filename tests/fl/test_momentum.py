"""Client momentum keyed by client id, the server's learning rate and momentum, and FedProx's proximal term."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fl.experiment as experiment
from fl.config import config_from
from fl.datasets import load
from fl.experiment import ExperimentConfig, run_experiment
from fl.models import build, get_flat
from fl.momentum import ClientMomentum, ServerMomentum
from fl.training import LocalConfig, local_update, local_updates

TINY = dict(data="breast_cancer", model="logreg", clients=6, rounds=3, stack="plain", local=LocalConfig(epochs=1, batch_size=32, lr=0.1, workers=1))


def _closed_form(beta, history):
    """m_k = beta^(k-1) u_1 + sum_{j>=2} (1 - beta) beta^(k-j) u_j: the recursion from m_1 = u_1, unrolled."""
    k = len(history)
    return beta ** (k - 1) * history[0] + sum((1 - beta) * beta ** (k - j) * history[j - 1] for j in range(2, k + 1))


@settings(max_examples=40, deadline=None)
@given(st.floats(0, 0.95), st.lists(st.permutations(range(5)).flatmap(lambda p: st.integers(1, 5).map(lambda n: p[:n])), min_size=1, max_size=6),
       st.integers(0, 2**31))
def test_client_momentum_follows_the_client_id_not_its_row(beta, rounds, seed):
    """Random subsets in random orders each round: every sent row is its own client's unrolled momentum."""
    rng = np.random.default_rng(seed)
    momentum, history = ClientMomentum(beta), {}
    for clients in rounds:
        updates = rng.normal(size=(len(clients), 3)).astype(np.float32)
        sent = momentum.step(clients, updates)
        for row, c in enumerate(clients):
            history.setdefault(c, []).append(updates[row].astype(np.float64))
            assert np.allclose(sent[row], _closed_form(beta, history[c]), atol=1e-5)


def test_client_momentum_refuses_a_bad_beta_and_a_row_count_mismatch():
    for beta in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="client_momentum"):
            ClientMomentum(beta)
    with pytest.raises(ValueError, match="2 clients, found 1 updates"):
        ClientMomentum(0.5).step([0, 1], np.zeros((1, 3), np.float32))


def _record(monkeypatch):
    """Records each round's (chosen ids, raw local updates, global params) and what the clients sent / the aggregate."""
    seen = {"train": [], "sent": [], "result": []}
    train, secure_sum = experiment.local_updates, experiment.secure_sum

    def recording_train(model, params, datasets, config, *, seeds):
        rows = train(model, params, datasets, config, seeds=seeds)
        seen["train"].append((params.copy(), rows.copy()))
        return rows

    def recording_sum(inputs, **kwargs):
        seen["sent"].append(inputs.copy())
        out = secure_sum(inputs, **kwargs)
        seen["result"].append(np.array(out.result, dtype=np.float64))
        return out

    monkeypatch.setattr(experiment, "local_updates", recording_train)
    monkeypatch.setattr(experiment, "secure_sum", recording_sum)
    return seen


def test_a_run_sends_each_clients_own_momentum_across_sampled_rounds(monkeypatch):
    seen = _record(monkeypatch)
    config = ExperimentConfig(**{**TINY, "rounds": 4}, sample_fraction=0.5, client_momentum=0.6, seed=3)
    run_experiment(config)
    chosen = _chosen(config)
    positions = {}
    for ids in chosen:
        for row, c in enumerate(ids):
            positions.setdefault(int(c), set()).add(row)
    assert any(len(p) > 1 for p in positions.values())  # some client sits at another row in another round
    history = {}
    for ids, (_, raw), sent in zip(chosen, seen["train"], seen["sent"]):
        for row, c in enumerate(ids):
            history.setdefault(int(c), []).append(raw[row].astype(np.float64))
            assert np.allclose(sent[row], _closed_form(0.6, history[int(c)]), atol=1e-6)
    assert any(len(h) > 1 for h in history.values())  # momentum actually carried over for someone


def _chosen(config):
    """The participants of each round, drawn as run_experiment draws them."""
    rng, _, _, _, byzantine, _ = experiment._setup(config)
    return [experiment._sample(config, rng, byzantine) for _ in range(config.rounds)]


def test_attacks_replace_the_sent_momentum_rows(monkeypatch):
    """Byzantine clients' attack is computed from, and replaces, what honest clients send (their momentum)."""
    seen = _record(monkeypatch)
    config = ExperimentConfig(**TINY, client_momentum=0.5, attackers=1, attack="sign_flipping")
    result = run_experiment(config)
    for record, ids, sent in zip(result.rounds, _chosen(config), seen["sent"]):
        attackers = [row for row, c in enumerate(ids) if int(c) in record.byzantine]
        honest = [row for row in range(len(ids)) if row not in attackers]
        assert len(attackers) == 1
        assert np.allclose(sent[attackers[0]], -sent[honest].mean(axis=0), atol=1e-6)


def test_server_momentum_and_lr_on_the_plain_stack(monkeypatch):
    """params_{r+1} = params_r + lr v_r, v_r = momentum v_{r-1} + g_r, g_r the plain stack's mean."""
    seen = _record(monkeypatch)
    lr, beta = 0.7, 0.5
    run_experiment(ExperimentConfig(**TINY, server_lr=lr, server_momentum=beta))
    params = [p.astype(np.float64) for p, _ in seen["train"]]
    g = seen["result"]
    assert np.allclose(params[1], params[0] + lr * g[0], atol=1e-6)
    assert np.allclose(params[2], params[1] + lr * (beta * g[0] + g[1]), atol=1e-6)
    assert not np.allclose(params[2], params[1] + lr * g[1], atol=1e-6)  # the momentum term is there


def test_server_momentum_arithmetic():
    server = ServerMomentum(lr=0.5, momentum=0.9)
    params = np.zeros(2, np.float32)
    params = server.step(params, np.array([1.0, -2.0]))
    assert np.allclose(params, [0.5, -1.0])
    params = server.step(params, np.array([1.0, 0.0]))  # v = 0.9 [1, -2] + [1, 0] = [1.9, -1.8]
    assert np.allclose(params, [0.5 + 0.95, -1.0 - 0.9]) and params.dtype == np.float32
    for lr, m in ((0, 0), (1, 1), (1, -0.1)):
        with pytest.raises(ValueError, match="server_lr"):
            ServerMomentum(lr, m)


def test_defaults_give_the_rounds_of_the_plain_update_rule(monkeypatch):
    """The default fields reproduce, bit for bit, a run whose server adds the aggregate and whose clients send
    their raw updates (the loop before these fields existed)."""
    config = ExperimentConfig(**{**TINY, "stack": "secagg+"}, sample_fraction=0.7)
    ours = [(r.loss, r.accuracy, r.included) for r in run_experiment(config).rounds]
    moved = run_experiment(dataclasses.replace(config, server_momentum=0.5)).rounds
    assert [r.loss for r in moved] != [loss for loss, _, _ in ours]  # the comparison can tell runs apart

    class Plain:
        def __init__(self, *args):
            pass

        def step(self, params, aggregate):
            return (params + aggregate).astype(np.float32)

    monkeypatch.setattr(experiment, "ServerMomentum", Plain)
    monkeypatch.setattr(experiment, "ClientMomentum", lambda beta: type("Raw", (), {"step": staticmethod(lambda clients, u: u)})())
    before = [(r.loss, r.accuracy, r.included) for r in run_experiment(config).rounds]
    assert ours == before


def _data():
    ds = load("breast_cancer").standardized()
    return ds, build("logreg", 30, 2, seed=0)


def test_fedprox_adds_mu_times_the_distance_to_the_global_model_to_the_gradient():
    """Two full-batch steps: w1 - w0 = d1 whatever mu; the second step adds -lr mu (w1 - w0) = -lr mu d1."""
    ds, model = _data()
    params = get_flat(model)
    lr, mu = 0.1, 3.0
    d1 = local_update(model, params, ds, LocalConfig(epochs=1, batch_size=None, lr=lr), seed=0)
    plain = local_update(model, params, ds, LocalConfig(epochs=2, batch_size=None, lr=lr), seed=0)
    prox = local_update(model, params, ds, LocalConfig(epochs=2, batch_size=None, lr=lr, fedprox_mu=mu), seed=0)
    assert np.allclose(prox - plain, -lr * mu * d1, atol=1e-6)
    assert not np.allclose(prox, plain, atol=1e-6)


def test_fedprox_with_a_large_mu_keeps_local_models_near_the_global_one():
    ds, model = _data()
    params = get_flat(model)
    norms = [np.linalg.norm(local_update(model, params, ds, LocalConfig(epochs=3, batch_size=32, lr=0.1, fedprox_mu=mu), seed=1))
             for mu in (0.0, 1.0, 5.0)]
    assert norms[0] > norms[1] > norms[2] > 0


def test_fedprox_gives_the_same_bits_for_any_worker_count():
    ds, model = _data()
    parts = [ds.subset(np.arange(i, len(ds.y), 5)) for i in range(5)]
    params = get_flat(model)
    seeds = [7 * i + 1 for i in range(5)]
    config = LocalConfig(epochs=2, batch_size=16, lr=0.1, fedprox_mu=2.0, workers=1)
    one = local_updates(model, params, parts, config, seeds=seeds)
    two = local_updates(model, params, parts, dataclasses.replace(config, workers=2), seeds=seeds)
    assert np.array_equal(one, two)
    assert not np.array_equal(one, local_updates(model, params, parts, dataclasses.replace(config, fedprox_mu=0.0), seeds=seeds))


@pytest.mark.parametrize("key, value, message", [
    ("client_momentum", "1", "client_momentum must be in \\[0, 1\\), found 1.0"),
    ("client_momentum", "-0.5", "client_momentum must be in \\[0, 1\\), found -0.5"),
    ("server_lr", "0", "server_lr must be > 0 .* found server_lr=0.0"),
    ("server_momentum", "1", "server_momentum in \\[0, 1\\), found .*server_momentum=1.0"),
    ("fedprox_mu", "-1", "fedprox_mu must be >= 0, found -1.0"),
])
def test_config_refuses_out_of_range_values_naming_the_field(key, value, message):
    with pytest.raises(ValueError, match=message):
        config_from({key: value})


def test_config_refuses_what_a_stack_or_engine_cannot_do():
    with pytest.raises(ValueError, match="hidden-state.*server_momentum=0.5"):
        ExperimentConfig(stack="hidden-state", server_momentum=0.5)
    with pytest.raises(ValueError, match="hidden-state.*client_momentum must be 0, found 0.5"):
        ExperimentConfig(stack="hidden-state", client_momentum=0.5)
    with pytest.raises(ValueError, match="client_momentum .*engine must be 'in-process', found 'flower-sim'"):
        ExperimentConfig(stack="plain", engine="flower-sim", client_momentum=0.5)
    with pytest.raises(ValueError, match="fedprox_mu must be >= 0"):
        LocalConfig(fedprox_mu=-0.1)
