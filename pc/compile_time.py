"""Seconds spent compiling, measured from jax's own compile events (not guessed from wall time).

jax 0.4.38 reports the duration of tracing, lowering to MLIR and the backend (XLA) compile of every jitted
program through `jax.monitoring`, and a persistent-cache hit as its retrieval time. `CompileMeter` sums
the time those events cover while it is active (as a union of intervals: jax also reports the tracing of
jitted functions called inside a traced one, nested in the outer event); one listener serves every meter.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

# jax is imported at the top: this module is loaded only by the training, inside a jax process.
from jax import monitoring

COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
    "/jax/compilation_cache/cache_retrieval_time_sec",
)
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_retrieval_time_sec"
BACKEND_EVENT = "/jax/core/compile/backend_compile_duration"


@dataclass(eq=False)  # meters are told apart by identity: two fresh ones are equal in value
class CompileMeter:
    """Compile seconds (trace + lowering + XLA compile, or cache retrieval) seen while active."""

    cache_hits: int = 0
    compiles: int = 0  # XLA backend compiles
    backend_s: float = 0.0  # of those seconds, XLA's backend compile (what a persistent-cache hit skips)
    intervals: list[tuple[float, float]] = field(default_factory=list)  # (start, end), perf_counter

    @property
    def seconds(self) -> float:
        """Length of the union of the events' intervals (nested events counted once)."""
        total, reach = 0.0, float("-inf")
        for start, end in sorted(self.intervals):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total


_ACTIVE: list[CompileMeter] = []
_LOCK = threading.Lock()
_REGISTERED: list[bool] = []


def _listener(event: str, duration: float, **_: object) -> None:
    if event not in COMPILE_EVENTS:
        return
    end = time.perf_counter()
    with _LOCK:
        for meter in _ACTIVE:
            meter.intervals.append((end - duration, end))
            meter.cache_hits += event == CACHE_HIT_EVENT
            if event == BACKEND_EVENT:
                meter.compiles += 1
                meter.backend_s += duration


@contextlib.contextmanager
def measure_compile() -> Iterator[CompileMeter]:
    """Meter the compile work done inside the block (nested meters each see it)."""
    with _LOCK:
        if not _REGISTERED:
            monitoring.register_event_duration_secs_listener(_listener)
            _REGISTERED.append(True)
        meter = CompileMeter()
        _ACTIVE.append(meter)
    try:
        yield meter
    finally:
        with _LOCK:
            _ACTIVE.remove(meter)


__all__ = ["CompileMeter", "measure_compile"]
