"""The golden texts of tests/launch/test_dryrun.py: the demo's dry run and two sbatch scripts.

The tests only compare; nothing re-records by accident. After an intended change, re-record with
`make golden` (which runs this file) and review the diff in git.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script by `make golden`: the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from contracts.paths import RunPaths
from grids.grid import load_grid
from launch.dryrun import dry_run, render_dry_run
from launch.options import LaunchOptions
from launch.sbatch import CODE_ROOT, render_sbatch

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ROOT = Path("/scratch/runs")


def gpu_options(**kw) -> LaunchOptions:
    base = dict(root=ROOT, executor="slurm", partition="gpu", time_min=30, mem_gb=8, image="/scratch/pcsweep.sif",
                sbatch={"mail-type": "END"}, max_parallel=2, trials_per_task=4, max_array_size=5,
                preflight=False)  # golden text must not depend on the cluster this runs beside
    return LaunchOptions(**{**base, **kw})


def normalize(text: str) -> str:
    return text.replace(sys.executable, "<python>").replace(str(CODE_ROOT), "<code>")


def golden_texts() -> dict[str, str]:
    """File name in tests/golden -> the text the code renders now (normalized)."""
    demo = load_grid(CODE_ROOT / "grids" / "demo.yaml")
    paths = RunPaths.of("demo", ROOT)
    cpu = LaunchOptions(root=ROOT, executor="slurm", gpus=0, cpus=1, container=False, platform="cpu", time_min=5)
    texts = {
        "dry_run_demo.txt": render_dry_run(dry_run(demo, gpu_options())),
        "sbatch_demo_apptainer.sh": render_sbatch(gpu_options(), "demo", paths, 5),
        "sbatch_demo_cpu.sh": render_sbatch(cpu, "demo", paths, 1),
    }
    return {name: normalize(text) for name, text in texts.items()}


def record() -> None:
    for name, text in golden_texts().items():
        (GOLDEN / name).write_text(text)
        print(f"recorded {GOLDEN / name}")


if __name__ == "__main__":
    record()
