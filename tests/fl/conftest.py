"""Fixtures shared by the tests that call Flower apps the way a SuperNode does or run Flower's simulation engine, and
the hooks that run the loopback deployments (test_flower_deployment.py) beside the other tests."""

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
def flower_sim():
    """One Ray start and one pool of ClientApp actors for every Flower simulation of the session: Flower's RayBackend
    builds a pool (one actor process a CPU, each importing torch) and shuts Ray down after every run, about 15-20 s of a
    simulation's 20 on 2 cores. The actors are generic (each call carries the run's ClientApp and the node's context),
    so a run reuses them as a run already reuses them across its nodes. A pool left busy (a run that failed) ends as
    Flower ends it, with Ray, and the next run starts both afresh; the session's end shuts Ray down. Messages wait
    10 ms instead of 100 ms for each of Flower's two polls (the nodes' inbox, the ServerApp's replies): a two-server
    round waits on ~90 queries to S1 in turn, 20 s of a 25-s simulation at 100 ms. Timing only: every message and
    reply is the same."""
    ray = pytest.importorskip("ray", reason="the Flower engine is the optional extra '.[flower]'")
    RayBackend = pytest.importorskip("flwr.server.superlink.fleet.vce.backend.raybackend").RayBackend
    InMemoryGrid = pytest.importorskip("flwr.superlink.grid.inmemory_grid").InMemoryGrid
    vce_api = pytest.importorskip("flwr.server.superlink.fleet.vce.vce_api")

    build, terminate, grid_init, kept = RayBackend.build, RayBackend.terminate, InMemoryGrid.__init__, {}
    inbox = vce_api.add_messages_to_queue  # its loop: every node's inbox, then f_stop.wait(0.1)

    def inbox_polled_often(state, queue, nodes_mapping, f_stop):
        inbox(state, queue, nodes_mapping, _ShortWaits(f_stop))

    def polled_often(self, state_factory, pull_interval=0.01):
        grid_init(self, state_factory, pull_interval)

    def resources(backend) -> tuple:
        return tuple(sorted(backend.client_resources.items()))

    def reused_build(self, app_fn):
        pool = kept.pop(resources(self), None)
        if pool is None:
            return build(self, app_fn)
        self.pool, self.app_fn = pool, app_fn

    def kept_terminate(self):
        if self.pool and len(self.pool.pool) == self.pool.num_actors and not self.pool._future_to_actor:
            kept[resources(self)] = self.pool  # every actor idle again
        else:
            terminate(self)  # Flower's own: its actors, then Ray

    patched = (reused_build, kept_terminate, polled_often, inbox_polled_often)
    RayBackend.build, RayBackend.terminate, InMemoryGrid.__init__, vce_api.add_messages_to_queue = patched
    yield
    RayBackend.build, RayBackend.terminate, InMemoryGrid.__init__, vce_api.add_messages_to_queue = build, terminate, grid_init, inbox
    for pool in kept.values():
        pool.terminate_all_actors()
    if ray.is_initialized():
        ray.shutdown()


class _ShortWaits:
    """A threading.Event whose waits last at most 10 ms (the simulation's stop event, seen by its inbox poll)."""

    def __init__(self, event) -> None:
        self.event = event

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float) -> bool:
        return self.event.wait(min(timeout, 0.01))


def _deployments(items) -> list:
    return [item for item in items if getattr(getattr(item, "module", None), "__name__", "").endswith(".test_flower_deployment")]


@pytest.hookimpl(trylast=True)  # after -m and -k deselected theirs
def pytest_collection_modifyitems(items):
    """The loopback deployments' tests go last: their deployments run in the background from the first test."""
    deployed = {item.nodeid for item in _deployments(items)}
    items.sort(key=lambda item: item.nodeid in deployed)  # stable: every other test keeps its place


@pytest.fixture(scope="session", autouse=True)
def deployments_in_background(request):
    """Starts the selected loopback deployments in a background thread (test_flower_deployment.start_in_background)
    at the first test under tests/fl of the process that runs them: the only one, since these tests are one unit of
    work for xdist (`pytest_xdist_make_scheduler` in tests/conftest.py), so a second worker never deploys them again."""
    deployed = _deployments(request.session.items)
    if deployed:
        deployed[0].module.start_in_background([item.callspec.params["case"] for item in deployed])


def pytest_sessionfinish(session):
    for module in {item.module for item in _deployments(session.items)}:
        module.stop_background()
