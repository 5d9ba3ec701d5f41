"""What a shard records about how its trials ran: precision, XLA flags, compile seconds, layout choices.

`iter_trial_results` fills a `RunRecord` as groups run; `RunRecord.attributes()` is the mapping a shard
writer adds to its file attributes (`pc.trials.run_trials` does; a launch task can pass the same record).
Pure Python: no jax.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ProgramRun:
    """One chunk of a group: its program (static key digest, padded size) and what it cost."""

    program: str  # short digest of the static key, as the per-group log line prints it
    n: int  # padded group size
    trials: int  # real trials in the chunk
    compile_s: float  # trace + lowering + XLA compile (or cache retrieval) during this chunk
    cache_hits: int  # persistent compilation cache hits during this chunk
    train_s: float  # wall seconds of the chunk's epochs, compile included
    matmul_precision: str
    transposed_w: bool


@dataclass
class RunRecord:
    """Filled while trials run; one per shard."""

    programs: list[ProgramRun] = field(default_factory=list)
    transposed: dict[str, dict] = field(default_factory=dict)  # shape -> TransposeChoice.as_dict()
    jax_default_matmul_precision: str = ""

    def attributes(self) -> dict:
        """Shard attributes (lists and dicts are stored as JSON by `contracts.shard.write_shard`)."""
        precisions = sorted({p.matmul_precision for p in self.programs})
        return {
            "matmul_precision": ",".join(precisions),
            "jax_default_matmul_precision": self.jax_default_matmul_precision,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "compile_s": round(sum(p.compile_s for p in self.programs), 3),
            "programs": [asdict(p) for p in self.programs],
            "transposed_w": self.transposed,
        }


__all__ = ["ProgramRun", "RunRecord"]
