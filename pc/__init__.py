"""pc: predictive-coding and backprop trainings on pcx (JAX), run by a launch task or `python -m pc`.

Importing `pc` sets one XLA flag before jax can start, and nothing else: jax 0.4.38's default CPU runtime
(the "thunk" runtime) runs these models about 2x slower and rounds differently, so every pc entry point
uses the legacy runtime unless the user's own `XLA_FLAGS` mentions the flag. XLA reads `XLA_FLAGS` when
its backend starts, which the first `import pcx` does; every pc module that imports jax is inside this
package, so this `__init__` always runs first. The training (`run_trials`) loads jax lazily.
"""

from __future__ import annotations

import os
from typing import Any

THUNK_FLAG = "--xla_cpu_use_thunk_runtime=false"
if "xla_cpu_use_thunk_runtime" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + THUNK_FLAG).strip()

__all__ = ["run_trials"]


def __getattr__(name: str) -> Any:
    if name == "run_trials":  # pc.trials is light, but keep `import pc` at the flag alone
        from pc.trials import run_trials

        return run_trials
    raise AttributeError(f"module 'pc' has no attribute {name!r}")
