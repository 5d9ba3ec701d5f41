"""pc: predictive-coding and backprop trainings on pcx (JAX), and the shard format.

This package's `__init__` stays light: `contracts.config`, `contracts.paths` and `contracts.shard` import no jax, so
`launch` and `collect` can use them on a login node. The training (`run_trials`) loads jax lazily.
"""

from contracts.config import ConfigError, TrialConfig, canonical_json, trial_id
from contracts.paths import RunPaths

__all__ = ["ConfigError", "RunPaths", "TrialConfig", "canonical_json", "trial_id", "run_trials"]


def __getattr__(name: str):
    if name == "run_trials":
        from pc.trials import run_trials

        return run_trials
    raise AttributeError(f"module 'pc' has no attribute {name!r}")
