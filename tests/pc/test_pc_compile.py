"""Compile seconds from jax's events, atomic persistent-cache entries, and the measured transposed-weight choice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from pc.compile_cache import AtomicLRUCache, is_valid_entry
from pc.compile_time import CompileMeter, measure_compile
from pc.transposed import ENV, choose, env_mode

REPO = Path(__file__).resolve().parents[2]


def test_meter_counts_nested_events_once():
    meter = CompileMeter(intervals=[(0.0, 4.0), (1.0, 2.0), (3.0, 5.0), (7.0, 8.0)])
    assert meter.seconds == 6.0


def test_meter_sees_a_fresh_compile_and_not_a_cached_call():
    f = jax.jit(lambda x: jnp.sin(x) * 3.0 + x.sum())
    x = jnp.ones(17)
    with measure_compile() as first:
        f(x).block_until_ready()
    with measure_compile() as again:
        f(x).block_until_ready()
    assert first.compiles == 1 and first.seconds > 0
    assert again.compiles == 0 and again.seconds == 0


def _entry(payload: bytes) -> bytes:
    """A cache entry as jax writes one without zstandard: zlib(4-byte compile time + executable)."""
    return zlib.compress((7).to_bytes(4, "big") + payload)


def test_a_torn_entry_is_never_read_and_is_replaced(tmp_path):
    cache = AtomicLRUCache(str(tmp_path), max_size=-1)
    whole = _entry(os.urandom(100_000))
    assert is_valid_entry(whole)
    # What jax 0.4.38's in-place write leaves when its writer dies (or is read) half way.
    (tmp_path / "k1-cache").write_bytes(whole[: len(whole) // 2])
    assert not is_valid_entry(whole[: len(whole) // 2])
    assert cache.get("k1") is None
    assert not (tmp_path / "k1-cache").exists()  # dropped, so the next put can write it
    cache.put("k1", whole)
    assert cache.get("k1") == whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k1-atime", "k1-cache"]


def test_a_writer_killed_mid_put_leaves_no_entry(tmp_path):
    # A real process writing a 200 MB entry is SIGKILLed as soon as its temporary file appears.
    script = textwrap.dedent(f"""
        import sys, zlib
        sys.path.insert(0, {str(REPO)!r})
        from pc.compile_cache import AtomicLRUCache
        value = zlib.compress(bytes(200_000_000), 0)  # a whole (stored, uncompressed) 200 MB entry
        AtomicLRUCache({str(tmp_path)!r}, max_size=-1).put("big", value)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("big-cache.tmp.*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cache = AtomicLRUCache(str(tmp_path), max_size=-1)
    final = tmp_path / "big-cache"
    if final.exists():  # the write finished before the kill: then it is whole
        assert is_valid_entry(final.read_bytes())
    else:
        assert cache.get("big") is None


def test_jax_uses_atomic_entries_and_heals_a_torn_one(tmp_path):
    # Two fresh processes share one cache folder, as two tasks do: the first writes, its entries are torn,
    # the second must not load them, recompiles and leaves whole entries.
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from pc import compile_cache
        compile_cache.install()  # as pc.trials does, before pcx compiles anything
        import pc.model, jax, jax.numpy as jnp
        from jax._src import compilation_cache
        jax.jit(lambda x: jnp.tanh(x) @ x.T)(jnp.ones((64, 64))).block_until_ready()
        print(type(compilation_cache._cache).__name__)
    """)
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path), "JAX_PLATFORMS": "cpu",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "AtomicLRUCache"
    entries = sorted(tmp_path.glob("*-cache"))
    assert entries and all(is_valid_entry(p.read_bytes()) for p in entries)
    for p in entries:
        p.write_bytes(p.read_bytes()[:100])
    second = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "Error reading persistent compilation cache entry" not in second.stderr
    assert sorted(tmp_path.glob("*-cache")) == entries
    assert all(is_valid_entry(p.read_bytes()) for p in entries)
    assert not list(tmp_path.glob("*.tmp.*"))


def test_transposed_choice_is_measured_cached_and_overridable(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    dims = (784, 1024, 1024, 10)
    measured = choose(dims, 128, 8)
    assert measured.reason == "measured" and measured.mode == "auto"
    assert measured.nn_s > 0 and measured.nt_s > measured.transpose_s > 0
    assert measured.use == (measured.nt_s <= 0.95 * measured.nn_s)
    assert choose(dims, 128, 8) is measured  # once per process and shape
    small = choose((2, 64, 64, 2), 32, 8)
    assert (small.use, small.reason) == (False, "below-rule")
    for mode, use in (("on", True), ("off", False)):
        monkeypatch.setenv(ENV, mode)
        forced = choose(dims, 128, 8)
        assert (forced.use, forced.reason, forced.mode) == (use, "env", mode)
        assert forced.as_dict()["shape"].startswith("B128 784x1024x1024x10 T8 cpu:")
    monkeypatch.setenv(ENV, "sometimes")
    with pytest.raises(ValueError, match=r"\$PCSWEEP_TRANSPOSED_W: got 'sometimes'; expected one of auto, on, off"):
        env_mode()


def test_nested_meters_leave_in_any_order_and_each_sees_the_compile():
    # two fresh meters hold equal values; leaving the inner one must not drop the outer one (removal by equality
    # did, and the outer one then raised ValueError on leaving)
    import jax
    import jax.numpy as jnp

    from pc.compile_time import measure_compile

    with measure_compile() as outer:
        with measure_compile() as inner:
            jax.jit(lambda x: x * 3.0 + 1.0)(jnp.arange(5.0)).block_until_ready()
        seen_inside = inner.compiles
        jax.jit(lambda x: x * 5.0 - 2.0)(jnp.arange(7.0)).block_until_ready()  # after the inner meter left
    assert seen_inside >= 1 and inner.compiles == seen_inside  # the inner meter stopped counting
    assert outer.compiles > inner.compiles
