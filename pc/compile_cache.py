"""Atomic entries in jax's persistent compilation cache, shared by every task of a run.

jax 0.4.38's file cache (`jax._src.lru_cache.LRUCache`, used by `jax._src.compilation_cache`) writes an
entry in place (`<key>-cache`, `Path.write_bytes`) and, unless a maximum size is set, without a lock. Two
tasks compiling the same program at once can leave or read a torn entry; reading one only warns and
recompiles, and since `put` skips keys that already exist, the torn entry stays and every later task
recompiles that program. `AtomicLRUCache` writes each file to `<name>.tmp.<pid>` and renames it into place
(`os.replace`, atomic on POSIX within one folder), and drops an entry that does not decompress instead of
returning it. `install()` makes jax use it; `python -m launch` sets `JAX_COMPILATION_CACHE_DIR` for tasks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# jax is imported here, not lazily: every caller is already inside a jax process (pc.trials loads this
# module only once it trains).
import jax
from jax._src import compilation_cache
from jax._src.lru_cache import _ATIME_SUFFIX, _CACHE_SUFFIX, LRUCache


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_valid_entry(data: bytes) -> bool:
    """Whether `data` is a whole entry: it decompresses (zstd or zlib, as jax wrote it) past its 4-byte header."""
    try:
        return len(compilation_cache.decompress_executable(data)) > 4
    except Exception:  # noqa: BLE001 - zlib.error / zstd.ZstdError / anything a torn frame raises
        return False


class AtomicLRUCache(LRUCache):
    """jax's LRU file cache whose entries appear whole or not at all (see the module docstring)."""

    def get(self, key: str) -> bytes | None:
        """The entry, or None when missing or torn (a torn file, left by an older writer, is removed)."""
        value = super().get(key)
        if value is None or is_valid_entry(value):
            return value
        for suffix in (_CACHE_SUFFIX, _ATIME_SUFFIX):
            (self.path / f"{key}{suffix}").unlink(missing_ok=True)
        return None

    def put(self, key: str, val: bytes) -> None:
        """As `LRUCache.put` (first writer wins, eviction under its lock when a size limit is set), atomically."""
        if not key:
            raise ValueError("key cannot be empty")
        if self.eviction_enabled and len(val) > self.max_size:
            return
        cache_path = self.path / f"{key}{_CACHE_SUFFIX}"
        if self.eviction_enabled:
            self.lock.acquire(timeout=self.lock_timeout_secs)
        try:
            if cache_path.exists():
                return
            self._evict_if_needed(additional_size=len(val))
            _write_atomic(cache_path, val)
            _write_atomic(self.path / f"{key}{_ATIME_SUFFIX}", _now_bytes())
        finally:
            if self.eviction_enabled:
                self.lock.release()


def _now_bytes() -> bytes:
    return time.time_ns().to_bytes(8, "little")


def _atomic_file_cache(path: str) -> tuple[AtomicLRUCache, str]:
    return AtomicLRUCache(path, max_size=compilation_cache.config.compilation_cache_max_size.value), path


MIN_COMPILE_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"


def install() -> None:
    """Make jax's persistent compilation cache (if a folder is set) write atomic entries, and keep every
    program in it. Idempotent.

    Replaces `compilation_cache.get_file_cache`, the hook jax calls once to build its cache; a cache
    jax already built with the stock class is reset so that the next compile builds ours. jax stores only
    programs that took at least 1 s to compile; a small two-moons program compiles in under a second on an
    idle machine, so every task recompiled it (measured by scripts/gpu-check: a task's compiles took 9.1 s
    against 2.5-2.9 s with the threshold at 0). The threshold is set to 0 unless
    $JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS is set.
    """
    if MIN_COMPILE_ENV not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if compilation_cache.get_file_cache is _atomic_file_cache:
        return
    compilation_cache.get_file_cache = _atomic_file_cache
    if compilation_cache._cache is not None and not isinstance(compilation_cache._cache, AtomicLRUCache):
        compilation_cache.reset_cache()


__all__ = ["MIN_COMPILE_ENV", "AtomicLRUCache", "install", "is_valid_entry"]
