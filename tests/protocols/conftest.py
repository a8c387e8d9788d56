"""Key material the HE tests share: generating CKKS keys (Galois keys above all) takes seconds, so each test
module makes them once."""

import pytest

from protocols.he.aggregation import CKKSAggregation
from protocols.he.robust import CKKSRobust


@pytest.fixture(scope="module")
def sum_keys():
    """Keys of the CKKS sum preset."""
    return CKKSAggregation().keys


@pytest.fixture(scope="module")
def robust_keys():
    """Keys of the CKKS robust preset (depth 2, Galois keys)."""
    return CKKSRobust().keys
