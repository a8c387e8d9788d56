"""Fixtures shared by the tests that call Flower apps the way a SuperNode does."""

import pytest


@pytest.fixture(scope="module")
def task_identity():
    """What a SuperNode sets before calling the app (run 7, task 1, node 0), restored after the module."""
    from flwr.supercore.task_identity import TaskIdentity

    names = ("_run_id", "_task_id", "_node_id")
    before = [getattr(TaskIdentity, name) for name in names]
    for name, value in zip(names, (7, 1, 0), strict=True):
        setattr(TaskIdentity, name, value)
    yield
    for name, value in zip(names, before, strict=True):
        setattr(TaskIdentity, name, value)
