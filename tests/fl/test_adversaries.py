"""Byzantine and mistaken clients, on matrices of honest updates and on labels."""

import numpy as np
import pytest

from fl.adversaries import (
    UPDATE_ATTACKS,
    a_little_is_enough,
    alie_z,
    flip_labels,
    gaussian,
    inner_product_manipulation,
    mimic,
    mislabel,
    sign_flipping,
)
from protocols.robust import aggregate


@pytest.fixture
def honest():
    return np.random.default_rng(0).normal(loc=1.0, size=(20, 8))


def test_shapes_and_definitions(honest):
    mean = honest.mean(axis=0)
    assert np.allclose(sign_flipping(honest, 3), -mean)
    assert np.allclose(inner_product_manipulation(honest, 3, epsilon=0.5), -0.5 * mean)
    assert np.allclose(mimic(honest, 2, target=4), honest[4])
    assert gaussian(honest, 4, sigma=2.0, rng=np.random.default_rng(1)).shape == (4, 8)
    z = alie_z(25, 5)
    assert np.allclose(a_little_is_enough(honest, 5, n=25), mean - z * honest.std(axis=0))
    for name, attack in UPDATE_ATTACKS.items():
        kwargs = {"rng": np.random.default_rng(0)} if name == "gaussian" else {"n": 25} if name == "alie" else {}
        assert attack(honest, 5, **kwargs).shape == (5, 8)


def test_alie_z_follows_baruch_et_al():
    # n = 50, f = 12: s = 26 - 12 = 14 supporters, z = Phi^-1(36 / 50)
    assert alie_z(50, 12) == pytest.approx(0.5828415072712162)
    with pytest.raises(ValueError, match="ALIE"):
        alie_z(10, 6)


def test_alie_moves_the_mean_but_stays_inside_the_honest_spread(honest):
    bad = a_little_is_enough(honest, 5, n=25)
    x = np.concatenate([honest, bad])
    assert np.linalg.norm(aggregate(x, 0, "mean") - honest.mean(axis=0)) > 0
    assert np.all(np.abs(bad[0] - honest.mean(axis=0)) <= 2 * honest.std(axis=0))


def test_label_flipping_and_mislabelling():
    y = np.array([0, 1, 2, 3, 9, 5])
    assert flip_labels(y, 10).tolist() == [9, 8, 7, 6, 0, 4]
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, size=1000)
    wrong = mislabel(y, 0.3, 4, rng=rng)
    assert (wrong != y).sum() == 300 and wrong.min() >= 0 and wrong.max() < 4
    assert np.array_equal(mislabel(y, 0.0, 4, rng=rng), y)
    with pytest.raises(ValueError, match="labels"):
        flip_labels(np.array([0, 10]), 10)
    with pytest.raises(ValueError, match="fraction"):
        mislabel(y, 1.5, 4, rng=rng)
