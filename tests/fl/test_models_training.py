"""Models, flat parameters, local training and evaluation."""

import numpy as np
import pytest

from fl.datasets import iid, load
from fl.models import build, get_flat, set_flat
from fl.training import LocalConfig, evaluate, local_update


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
