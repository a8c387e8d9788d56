"""Hypothesis profiles: no per-example deadline (this machine is shared and noisy); under CI the
examples are derandomized, so a submission is judged on the same cases every time. The key holder's default
ledgers go to a folder of this session (SECAGG_LEDGER_DIR, set before any Flower simulation starts, so its
processes inherit it), never to ~/.secagg: a test's fixed node and run ids would otherwise meet an earlier
session's releases. Under the default `-n 2` (pyproject), the tests under tests/fl and the README's
blocks are one group, run in one worker in order: they share one Ray start and one training pool, start the
loopback deployment in the background (tests/fl/conftest.py), and train in processes of their own, so a second
worker of them would only oversubscribe the cores; every other test goes to whichever worker is free."""

import atexit
import os
import shutil
import tempfile

import pytest
from hypothesis import settings

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
os.environ["SECAGG_LEDGER_DIR"] = tempfile.mkdtemp(prefix="secagg-test-ledgers-")
atexit.register(shutil.rmtree, os.environ["SECAGG_LEDGER_DIR"], True)


GROUPED = ("tests/fl/", "tests/test_readme.py")  # one unit of work under -n (see above)


@pytest.hookimpl(tryfirst=True)  # before xdist's own choice of scheduler
def pytest_xdist_make_scheduler(config, log):
    """xdist's scope scheduling with the tests under GROUPED as one scope (a worker takes them all, in order) and every
    other test a scope of its own. xdist's `--dist loadgroup` would do this from marks, but with pytest 9.2 it loses
    the groups (pytest-dev/pytest-xdist#1386)."""
    from xdist.scheduler import LoadScopeScheduling

    class OneFlWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "fl" if nodeid.startswith(GROUPED) else nodeid

    return OneFlWorker(config, log)
