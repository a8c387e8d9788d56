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


@pytest.fixture(scope="session")
def ray_pool():
    """One Ray start and one pool of ClientApp actors for every Flower simulation of the session: Flower's RayBackend
    builds a pool (one actor process a CPU, each importing torch) and shuts Ray down after every run, about 15-20 s of a
    simulation's 20 on 2 cores. The actors are generic (each call carries the run's ClientApp and the node's context),
    so a run reuses them as a run already reuses them across its nodes. A pool left busy (a run that failed) ends as
    Flower ends it, with Ray, and the next run starts both afresh; the session's end shuts Ray down."""
    ray = pytest.importorskip("ray", reason="the Flower engine is the optional extra '.[flower]'")
    RayBackend = pytest.importorskip("flwr.server.superlink.fleet.vce.backend.raybackend").RayBackend

    build, terminate, kept = RayBackend.build, RayBackend.terminate, {}

    def reused_build(self, app_fn):
        pool = kept.pop(tuple(sorted(self.client_resources.items())), None)
        if pool is None:
            return build(self, app_fn)
        self.pool, self.app_fn = pool, app_fn

    def kept_terminate(self):
        if self.pool and len(self.pool.pool) == self.pool.num_actors and not self.pool._future_to_actor:
            kept[tuple(sorted(self.client_resources.items()))] = self.pool  # every actor idle again
        else:
            terminate(self)  # Flower's own: its actors, then Ray

    RayBackend.build, RayBackend.terminate = reused_build, kept_terminate
    yield
    RayBackend.build, RayBackend.terminate = build, terminate
    for pool in kept.values():
        pool.terminate_all_actors()
    if ray.is_initialized():
        ray.shutdown()
