"""The calibration file (contracts.calibration) and `python -m pc.calibrate` on this CPU."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contracts.calibration import (
    FOLDER,
    Calibration,
    CalibrationError,
    GroupCost,
    ShapeCost,
    file_name,
    find_calibration,
    read_calibration,
    to_dict,
    write_calibration,
)

REPO = Path(__file__).resolve().parents[2]

CAL = Calibration(
    platform="cuda", device_kind="NVIDIA H200", device_name="NVIDIA H200", date="2026-12-02T06:00:00Z",
    versions={"jax": "0.4.38", "jaxlib": "0.4.38", "pcx": "0.6.3"}, data_load_s={"fashion_mnist": 1.5},
    host={"threads": 16, "load_average": [0.1, 0.2], "quick": False},
    shapes=(ShapeCost(dataset="two_moons", kind="pc", width=128, T=8, batch_size=32, constant_width=False,
                      dims=(2, 128, 128, 2), n_batches=32, timed_batches=32,
                      groups=(GroupCost(n=2, compile_s=7.5, trial_epoch_s=0.01, epochs_timed=2, peak_bytes=None,
                                        est_bytes=1000),
                              GroupCost(n=4096, compile_s=20.0, trial_epoch_s=1e-4, epochs_timed=2,
                                        peak_bytes=2**30, est_bytes=2**31))),),
)


def test_round_trip(tmp_path):
    path = write_calibration(tmp_path, CAL)
    assert path == tmp_path / "NVIDIA_H200.json"
    back = read_calibration(path)
    assert back == dataclasses.replace(CAL, path=str(path))
    assert json.loads(path.read_text())["schema"] == "pcsweep-calibration"
    assert not list(tmp_path.glob("*.tmp.*"))  # written through a temporary sibling


def test_trace_and_task_start_round_trip_and_are_optional(tmp_path):
    groups = (dataclasses.replace(CAL.shapes[0].groups[0], trace_s=1.25),)
    cal = dataclasses.replace(CAL, task_start_s=3.5, shapes=(dataclasses.replace(CAL.shapes[0], groups=groups),))
    back = read_calibration(write_calibration(tmp_path, cal))
    assert back.task_start_s == 3.5 and back.shapes[0].groups[0].trace_s == 1.25
    old = to_dict(CAL)  # a file written before these were measured reads as "not measured"
    old.pop("task_start_s")
    for g in old["shapes"][0]["groups"]:
        g.pop("trace_s")
    (tmp_path / "old.json").write_text(json.dumps(old))
    back = read_calibration(tmp_path / "old.json")
    assert back.task_start_s is None and all(g.trace_s is None for g in back.shapes[0].groups)


def test_file_name_is_safe():
    assert file_name("cpu") == "cpu.json"
    assert file_name("NVIDIA H100 80GB HBM3") == "NVIDIA_H100_80GB_HBM3.json"
    assert file_name("../x/y") == ".._x_y.json"


def _damaged(obj) -> str:
    good = to_dict(CAL)
    return json.dumps(obj(good) if callable(obj) else obj)


@pytest.mark.parametrize("text, why", [
    ("{not json", r"cannot read a calibration \(JSONDecodeError"),
    ("\xff\xfe", r"cannot read a calibration"),
    (json.dumps([1, 2]), r"not a pcsweep-calibration file"),
    (json.dumps({"schema": "pcsweep-shard", "version": 1}),
     r"not a pcsweep-calibration file \(schema: 'pcsweep-shard'\)"),
    (_damaged(lambda d: {**d, "version": 2}), r"version 2; this pcsweep reads version 1"),
    (_damaged(lambda d: {**d, "platform": "tpu"}), r"calibration\.platform: got 'tpu'"),
    (_damaged(lambda d: {**d, "shapes": []}), r"holds no measured shapes"),
    (_damaged(lambda d: {**d, "shapes": "x"}), r"calibration\.shapes: got 'x'; expected list"),
    (_damaged(lambda d: {**d, "shapes": [{**d["shapes"][0], "dataset": "cifar"}]}),
     r"shapes\[0\]\.dataset: got 'cifar'"),
    (_damaged(lambda d: {**d, "shapes": [{**d["shapes"][0], "width": True}]}), r"shapes\[0\]\.width: got True"),
    (_damaged(lambda d: {**d, "shapes": [{**d["shapes"][0], "dims": [2, 0, 2]}]}), r"shapes\[0\]\.dims"),
    (_damaged(lambda d: {**d, "shapes": [{**d["shapes"][0], "groups": []}]}), r"shapes\[0\]\.groups: empty"),
    (_damaged(lambda d: {**d, "shapes": [{**d["shapes"][0], "groups": [{"n": 2, "compile_s": 1.0,
                                                                          "trial_epoch_s": -1.0,
                                                                          "epochs_timed": 1}]}]}),
     r"shapes\[0\]\.groups\[0\]: .*trial_epoch_s > 0"),
    (_damaged(lambda d: {**d, "shapes": [{**d["shapes"][0], "groups": [7]}]}),
     r"shapes\[0\]\.groups\[0\]\.n: got None"),
    (_damaged(lambda d: {**d, "data_load_s": {"x": "slow"}}), r"data_load_s: got"),
    (_damaged(lambda d: {**d, "task_start_s": -1.0}), r"calibration\.task_start_s: got -1\.0; expected seconds >= 0"),
    (_damaged(lambda d: {**d, "task_start_s": "slow"}), r"calibration\.task_start_s: got 'slow'"),
    (_damaged(lambda d: {**d, "shapes": [{**d["shapes"][0], "groups": [{**d["shapes"][0]["groups"][0],
                                                                          "trace_s": 99.0}]}]}),
     r"shapes\[0\]\.groups\[0\]\.trace_s: got 99\.0; expected 0 <= trace_s <= compile_s"),
])
def test_a_damaged_or_foreign_file_is_one_line_naming_it(tmp_path, text, why):
    path = tmp_path / "cpu.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    with pytest.raises(CalibrationError, match=rf"^{path}: .*{why}") as info:
        read_calibration(path)
    assert "\n" not in str(info.value)


def test_find_takes_the_newest_of_the_platform(tmp_path):
    assert find_calibration(tmp_path, "cuda") is None  # no folder
    folder = tmp_path / FOLDER
    write_calibration(folder, CAL)
    newer = write_calibration(folder, dataclasses.replace(CAL, device_kind="NVIDIA H100", date="2026-12-03"))
    write_calibration(folder, dataclasses.replace(CAL, platform="cpu", device_kind="cpu", date="2027-01-01"))
    assert find_calibration(tmp_path, "cuda").path == str(newer)
    assert find_calibration(tmp_path, "cpu").device_kind == "cpu"
    (folder / "junk.json").write_text("[]")
    with pytest.raises(CalibrationError, match=r"junk\.json: not a pcsweep-calibration file"):
        find_calibration(tmp_path, "cuda")


def _calibrate(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pc.calibrate", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.mark.parametrize("args, why", [
    (["--shapes", "two_moons:pc"], r"--shapes: got 'two_moons:pc'; expected DATASET:KIND:WIDTH"),
    (["--shapes", "cifar:pc:32"], r"--shapes: got dataset 'cifar'"),
    (["--shapes", "constant:pc:99"], r"--shapes: got 'constant:pc:99'; a constant width must be a square"),
    (["--groups", "0"], r"--groups: got \[0\]"),
    (["--epochs", "0"], r"--epochs: got 0"),
])
def test_bad_arguments_are_one_line_and_write_nothing(tmp_path, args, why):
    out = _calibrate("--platform", "cpu", "--root", str(tmp_path), *args, timeout=60)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert re.search(why, lines[0]), lines[0]
    assert not (tmp_path / FOLDER).exists()


@pytest.mark.slow  # 4 compiles: 30 s on the quiet 2-core machine, 80 s while others load it
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU is visible here")
def test_cuda_without_a_gpu_is_one_line(tmp_path):
    out = _calibrate("--platform", "cuda", "--quick", "--root", str(tmp_path), timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert re.fullmatch(r"calibrate: --platform cuda: jax cannot start it here \(.*\); run on a node with that "
                        r"device, inside the image\n", out.stderr), out.stderr
    assert not (tmp_path / FOLDER).exists()


def test_a_task_start_measured_already_is_used_without_timing_it_again(monkeypatch):
    """scripts/gpu-check calibrates shape by shape and times the task start once: a given start is kept."""
    import pc.calibrate as calibrate_module

    def fail(*args, **kwargs):
        raise AssertionError("measure_task_start ran although a task start was given")

    monkeypatch.setattr(calibrate_module, "measure_task_start", fail)
    settings = calibrate_module.Settings(platform="cpu", shapes=(), groups=(2,), epochs_timed=1, target_epoch_s=0.1,
                                         max_program_s=30.0, task_start_s=1.25)
    cal = calibrate_module.calibrate(settings, progress=False)
    assert cal.task_start_s == 1.25 and cal.shapes == ()


def test_quick_calibration_on_cpu_writes_a_valid_file(tmp_path):
    t0 = time.monotonic()
    out = _calibrate("--quick", "--platform", "cpu", "--root", str(tmp_path), "--no-progress")
    took = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    cal = read_calibration(tmp_path / FOLDER / "cpu.json")
    assert cal.platform == "cpu" and cal.device_kind == "cpu" and cal.host["quick"] is True
    assert {(s.dataset, s.kind, s.width) for s in cal.shapes} == {("two_moons", "pc", 32), ("two_moons", "bp", 32)}
    for s in cal.shapes:
        assert [g.n for g in s.groups] == [2, 8]
        assert all(g.compile_s > 0 and g.trial_epoch_s > 0 and g.peak_bytes is None for g in s.groups)
        # the trace + lowering a persistent-cache hit still pays: a part of the compile, never all of it
        assert all(g.trace_s is not None and 0 < g.trace_s < g.compile_s for g in s.groups)
    assert cal.task_start_s is not None and 0.3 < cal.task_start_s < 60  # python + jax + pcx imports, measured
    assert f"task start (fresh python, task side, jax, pcx, device): {cal.task_start_s:.1f} s" in out.stdout
    assert cal.versions["jax"] and cal.versions["pcx"]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("calibrate: 2 shapes, 4 programs on cpu") and last.endswith(f"{tmp_path}/{FOLDER}/cpu.json")
    assert "| two_moons pc w32 | 2x32x32x2 | 2 |" in out.stdout
    assert took < 120, f"--quick took {took:.0f} s"  # 30 s quiet, 80 s loaded on the 2-core machine
