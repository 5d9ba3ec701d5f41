"""Whether jax can start its backend here, as one line (not JAX's 80-line traceback).

`JAX_PLATFORMS=cuda` (what `--platform cuda` sets) on a machine without a usable GPU, or a misspelt platform,
makes jax raise on first use, deep inside the first trial. `python -m pc` and a task ask first, so the user
reads one line and every trial of a task is recorded as failed with that reason instead of "lost".
"""

from __future__ import annotations

import os


def environment_problem() -> str | None:
    """A PCSWEEP_* setting of pc that is not valid (the variable named, with the fix), or None. Checked before
    any training, so a typo costs nothing (it used to surface deep inside the first group, unnamed)."""
    from pc.memory import MEM_ENV, env_max_group, env_mem_gb
    from pc.transposed import env_mode

    checks = [env_mode, env_max_group]
    if os.environ.get(MEM_ENV, "").strip():
        checks.append(env_mem_gb)
    for check in checks:
        try:
            check()
        except ValueError as e:
            return str(e)
    return None


def backend_problem() -> str | None:
    """Why jax cannot start its backend in this process, in one line, or None when it can."""
    try:
        import jax

        jax.devices()
    except Exception as e:  # noqa: BLE001 - RuntimeError, or a bare AssertionError when no plugin offers the platform
        wanted = os.environ.get("JAX_PLATFORMS", "")
        first = next((line.strip() for line in str(e).splitlines() if line.strip()),
                     f"no backend offers platform {wanted or 'default'!r}")
        return (f"JAX cannot start its backend ({first}); JAX_PLATFORMS={wanted!r}: without a GPU use --platform cpu "
                "(JAX_PLATFORMS=cpu); on a GPU node install the cuda extra (docs/gpu-check.md)")
    return None
