"""Hypothesis profiles: no per-example deadline (this machine is shared and noisy); under CI the
examples are derandomized, so a submission is judged on the same cases every time. The key holder's default
ledgers go to a folder of this session (SECAGG_LEDGER_DIR, set before any Flower simulation starts, so its
processes inherit it), never to ~/.secagg: a test's fixed node and run ids would otherwise meet an earlier
session's releases."""

import atexit
import os
import shutil
import tempfile

from hypothesis import settings

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
os.environ["SECAGG_LEDGER_DIR"] = tempfile.mkdtemp(prefix="secagg-test-ledgers-")
atexit.register(shutil.rmtree, os.environ["SECAGG_LEDGER_DIR"], True)
