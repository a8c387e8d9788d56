"""A one-line description of the machine and the library versions a benchmark ran on."""

from __future__ import annotations

import os
import platform

import cryptography
import numpy as np
from cryptography.hazmat.backends.openssl.backend import backend


def describe() -> str:
    cpu = platform.processor() or "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}, "
        f"cryptography {cryptography.__version__} ({backend.openssl_version_text()})"
    )
