"""A bound on the CPU time of the calling thread, for tests that feed hostile input.

Such a test guards against a blow-up (a quadratic parser takes minutes on the inputs the
tests use), not against a slowdown: speed goals are measured in benchmarks/. Wall time on a
machine shared with other work says as much about the other work as about the code; the
thread's CPU time counts only the time it ran, so a bound on it does not flake under load.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cpu_bound(seconds: float, what: str) -> Iterator[None]:
    """Fails when the block used more than `seconds` of this thread's CPU time."""
    started = time.thread_time()
    yield
    spent = time.thread_time() - started
    assert spent < seconds, f"{what}: {spent:.1f} s of CPU, bound {seconds:g} s"
