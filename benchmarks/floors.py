"""Physical floors a benchmark prints beside its figures."""

from __future__ import annotations

import time

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_CHUNK = 1 << 24  # 16 MiB


def aes_ctr_keystream_seconds(nbytes: int, reps: int = 3) -> float:
    """Median CPU seconds (this thread, as the protocols' meters count) to write `nbytes` of AES-128-CTR keystream
    in place into a reused buffer (no key schedule per mask, no HKDF, no add): the floor of expanding masks of that
    many bytes."""
    buf = np.zeros(min(nbytes, _CHUNK) + 16, dtype=np.uint8)
    times = []
    for _ in range(reps):
        encryptor = Cipher(algorithms.AES(b"\x00" * 16), modes.CTR(b"\x00" * 16)).encryptor()
        start = time.thread_time()
        left = nbytes
        while left > 0:
            step = min(left, _CHUNK)
            encryptor.update_into(memoryview(buf)[:step], buf)
            left -= step
        times.append(time.thread_time() - start)
    return float(np.median(times))


def numpy_sum_seconds(n: int, d: int, dtype: np.dtype, reps: int = 3) -> float:
    """Median CPU seconds (this thread) for a server to add n vectors of d elements in place (the plaintext floor)."""
    vec = np.ones(d, dtype=dtype)
    times = []
    for _ in range(reps):
        acc = np.zeros(d, dtype=dtype)
        start = time.thread_time()
        for _ in range(n):
            np.add(acc, vec, out=acc)
        times.append(time.thread_time() - start)
    return float(np.median(times))


def median_wall_seconds(fn, reps: int) -> float:
    """Median wall seconds of `reps` calls of `fn()`."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def median_cpu_seconds(fn, reps: int) -> float:
    """Median CPU seconds of this process over `reps` calls of `fn()` (run with OMP_NUM_THREADS=1 so that BLAS
    counts one thread, as the protocols' meters do); on a shared machine the comparable figure, where wall is not."""
    times = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return float(np.median(times))
