"""Sections 1 (software, devices, driver, ptxas) and 2 (the matmul precision in effect) of scripts/gpu-check."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from gpucheck.common import line, version

PACKAGES = ("jax", "jaxlib", "pcx", "jax-cuda12-plugin", "jax-cuda12-pjrt", "nvidia-cuda-nvcc-cu12")
FLOAT32_CLASS_MAX_ERR = 1e-5  # relative matmul error at or below this: full float32; above: TF32/bf16-class
PRECISION_PROBE_N = 512  # the probe multiplies two N x N float32 matrices


def nvidia_driver() -> dict[str, Any]:
    """The NVIDIA driver as nvidia-smi reports it (name, driver version, memory per GPU), or why not."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"nvidia_smi": None, "driver_version": None, "gpus": [],
                "note": "nvidia-smi not on PATH (no NVIDIA driver visible; inside Apptainer use --nv)"}
    try:
        r = subprocess.run([exe, "--query-gpu=index,name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return {"nvidia_smi": exe, "driver_version": None, "gpus": [], "note": f"nvidia-smi failed: {e}"}
    rows = [[c.strip() for c in row.split(",")] for row in r.stdout.strip().splitlines() if row.strip()]
    driver = rows[0][2] if rows and len(rows[0]) > 2 else None
    note = "" if r.returncode == 0 else (r.stderr.strip() or f"exit {r.returncode}")
    return {"nvidia_smi": exe, "driver_version": driver, "gpus": [", ".join(row) for row in rows], "note": note}


def ptxas_candidates() -> list[tuple[str, Path]]:
    """Where XLA looks for ptxas, in order: jax's CUDA path (CUDA_ROOT, else the nvidia-cuda-nvcc wheel, which
    jax passes to XLA), the wheel itself, $PATH, /usr/local/cuda."""
    out: list[tuple[str, Path]] = []
    try:
        from jax._src import lib as jax_lib  # cuda_path: what jax hands XLA as its CUDA data dir

        cuda_path = getattr(jax_lib, "cuda_path", None)
    except Exception:  # noqa: BLE001 - a private module; its absence only means one candidate fewer
        cuda_path = None
    if cuda_path:
        source = "CUDA_ROOT" if os.environ.get("CUDA_ROOT") else "jax's cuda_path (the nvidia-cuda-nvcc wheel)"
        out.append((source, Path(cuda_path) / "bin" / "ptxas"))
    try:
        spec = importlib.util.find_spec("nvidia.cuda_nvcc")
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        out.append(("the nvidia-cuda-nvcc wheel", Path(folder) / "bin" / "ptxas"))
    on_path = shutil.which("ptxas")
    if on_path:
        out.append(("$PATH", Path(on_path)))
    out.append(("/usr/local/cuda", Path("/usr/local/cuda/bin/ptxas")))
    return out


def find_ptxas() -> dict[str, Any]:
    """The first ptxas of `ptxas_candidates` that exists, and its `--version` (e.g. 12.6.85), or "not found"."""
    for source, path in ptxas_candidates():
        if not path.is_file():
            continue
        try:
            r = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
            text = r.stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            text = f"--version failed: {e}"
        match = re.search(r"release\s+([\d.]+),\s+V([\d.]+)", text)
        return {"path": str(path), "source": source, "version": match.group(2) if match else None,
                "version_text": text.splitlines()[-1] if text else ""}
    return {"path": None, "source": None, "version": None, "version_text": "not found"}


def software() -> dict[str, Any]:
    """Section 1: versions, devices, the NVIDIA driver and the ptxas XLA will use."""
    import jax

    versions = {pkg: version(pkg) for pkg in PACKAGES}
    for pkg in PACKAGES:
        line(f"{pkg:24s} {versions[pkg]}")
    devices = jax.devices()
    line(f"devices: {len(devices)}: {', '.join(f'{d.platform}:{d.id} {d.device_kind}' for d in devices)}")
    driver = nvidia_driver()
    if driver["driver_version"]:
        line(f"NVIDIA driver {driver['driver_version']} (nvidia-smi: {'; '.join(driver['gpus'])})")
    else:
        line(f"NVIDIA driver: not found ({driver['note']})")
    ptxas = find_ptxas()
    if ptxas["path"]:
        line(f"ptxas {ptxas['version'] or '(version not parsed)'} at {ptxas['path']} ({ptxas['source']}): "
             f"{ptxas['version_text']}")
    else:
        line("ptxas: not found (looked in: " + ", ".join(str(p) for _, p in ptxas_candidates()) + ")")
    return {"versions": versions, "devices": [f"{d.platform}:{d.id} {d.device_kind}" for d in devices],
            "device_count": len(devices), "driver": driver, "ptxas": ptxas}


def matmul_probe(name: str) -> tuple[list[str], float]:
    """(the dot precisions jax writes into the lowered program, relative error of the device's float32 matmul
    against float64) for `train.matmul_precision = name`, traced under pc.precision.precision_scope."""
    import jax
    import numpy as np

    from pc.precision import precision_scope

    rng = np.random.default_rng(0)
    a = rng.standard_normal((PRECISION_PROBE_N, PRECISION_PROBE_N)).astype(np.float32)
    b = rng.standard_normal((PRECISION_PROBE_N, PRECISION_PROBE_N)).astype(np.float32)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    with precision_scope(name):
        f = jax.jit(lambda x, y: x @ y)  # a new function per precision: nothing comes from jit's cache
        text = f.lower(a, b).as_text()
        got = np.asarray(f(a, b), dtype=np.float64)
    hlo = sorted({p for pair in re.findall(r"precision = \[(\w+), (\w+)\]", text) for p in pair})
    return hlo, float(np.max(np.abs(got - exact)) / np.max(np.abs(exact)))


def precision() -> dict[str, Any]:
    """Section 2: jax's process-wide default, XLA_FLAGS, and for each train.matmul_precision value what the
    program carries and how exact a float32 matmul on this device then is."""
    from contracts.config import MATMUL_PRECISIONS
    from pc.precision import jax_default_precision

    default = jax_default_precision()
    line(f"jax_default_matmul_precision = {default}" + (" (jax's own default)" if default == "unset" else ""))
    env = {k: os.environ.get(k, "") for k in ("XLA_FLAGS", "JAX_PLATFORMS", "XLA_PYTHON_CLIENT_PREALLOCATE")}
    for key, value in env.items():
        line(f"{key}={value or '(unset)'}")
    mapping = {}
    for name in MATMUL_PRECISIONS:
        hlo, err = matmul_probe(name)
        kind = "full float32" if err <= FLOAT32_CLASS_MAX_ERR else "REDUCED (TF32/bf16-class)"
        mapping[name] = {"hlo_precision": hlo, "relative_error": float(f"{err:.3g}"),
                         "float32": err <= FLOAT32_CLASS_MAX_ERR}
        line(f"train.matmul_precision={name:8s} -> dot precision {'/'.join(hlo) or '?'}; a {PRECISION_PROBE_N}^2 "
             f"float32 matmul here is off float64 by {err:.2e} (relative to its largest entry): {kind}")
    return {"jax_default_matmul_precision": default, "env": env, "mapping": mapping}


__all__ = ["find_ptxas", "matmul_probe", "nvidia_driver", "precision", "ptxas_candidates", "software"]
