"""Hypothesis profiles: no per-example deadline (this machine is shared and noisy); under CI the
examples are derandomized, so a submission is judged on the same cases every time."""

import os

from hypothesis import settings

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
