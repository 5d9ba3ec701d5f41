"""The measured cost model: the calibration estimator, the planner's use of it, and the dry run saying which."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.calibration import (
    CACHE_LOAD_S,
    FOLDER,
    MIN_TRIAL_S,
    Calibration,
    GroupCost,
    ShapeCost,
    estimate,
    program_key,
    to_dict,
    write_calibration,
)
from contracts.config import TrialConfig
from contracts.shapes import layer_dims, train_batches
from grids.grid import load_grid
from launch.dryrun import dry_run, render_dry_run
from launch.options import LaunchOptions, OptionsError
from launch.plan import FLOPS_PER_S, GROUP_OVERHEAD_S, CostModel, estimate_trial_seconds, pack_tasks
from launch.sbatch import CODE_ROOT


def shape(dataset: str, kind: str, width: int, per_epoch: dict[int, float], compile_s: float = 5.0,
          T: int | None = None, batch: int | None = None) -> ShapeCost:
    """A measured shape: trial-epoch seconds per group size."""
    cfg = TrialConfig().replace(**{"data.dataset": dataset, "model.kind": kind, "model.width": width,
                                   "train.T": T or (8 if kind == "pc" else 1),
                                   "data.batch_size": batch or (128 if dataset.endswith("mnist") else 32)})
    groups = tuple(GroupCost(n=n, compile_s=compile_s + n / 100, trial_epoch_s=s, epochs_timed=2)
                   for n, s in sorted(per_epoch.items()))
    return ShapeCost(dataset=dataset, kind=kind, width=width, T=cfg.train.T, batch_size=cfg.data.batch_size,
                     constant_width=False, dims=layer_dims(cfg), n_batches=train_batches(cfg), timed_batches=8,
                     groups=groups)


CAL = Calibration(
    platform="cpu", device_kind="cpu", device_name="test cpu", date="2026-12-02T00:00:00Z",
    versions={"jax": "0.4.38"}, data_load_s={"two_moons": 0.1, "fashion_mnist": 2.0},
    shapes=(
        shape("two_moons", "pc", 32, {2: 0.02, 32: 0.01}, compile_s=4.0),
        shape("two_moons", "pc", 128, {2: 0.04, 32: 0.02}, compile_s=6.0),
        shape("two_moons", "pc", 1024, {2: 1.0, 32: 0.8}, compile_s=9.0),
        shape("two_moons", "bp", 128, {2: 0.005}, compile_s=3.0),
        shape("fashion_mnist", "pc", 1024, {2: 60.0}, compile_s=12.0),
    ),
)


def moons(**keys) -> TrialConfig:
    return TrialConfig().replace(**{"data.dataset": "two_moons", "data.batch_size": 32, "train.epochs": 8, **keys})


def seconds(cfg: TrialConfig, group: int = 2) -> float:
    est = estimate(CAL, cfg, group)
    assert est is not None
    return est.trial_s


def test_a_measured_shape_is_reproduced_exactly():
    cfg = moons(**{"model.width": 128})
    est = estimate(CAL, cfg, 2)
    assert est.trial_s == pytest.approx(0.04 * 8)  # 8 epochs of the measured trial-epoch
    assert est.compile_s == pytest.approx(6.02)
    assert est.shape == "two_moons pc w128 T8 B32 n2"


@pytest.mark.parametrize("key, small, big", [
    ("train.epochs", 2, 20),
    ("model.width", 64, 512),
    ("model.width", 1024, 4096),  # beyond the widest measured: scaled by FLOPs
    ("data.n_samples", 512, 4096),  # more batches per epoch
])
def test_more_work_means_more_seconds(key, small, big):
    assert seconds(moons(**{key: big})) > seconds(moons(**{key: small}))


def test_width_is_monotone_over_the_whole_range():
    widths = [16, 32, 48, 64, 100, 128, 200, 512, 1000, 1024, 2048, 4096]
    got = [seconds(moons(**{"model.width": w})) for w in widths]
    assert got == sorted(got)
    assert got[0] == got[1]  # narrower than any measured: the narrowest (overhead-bound), not scaled down


def test_interpolation_lies_between_the_neighbours():
    lo, hi = seconds(moons(**{"model.width": 128})), seconds(moons(**{"model.width": 1024}))
    mid = seconds(moons(**{"model.width": 362}))  # ~ geometric middle
    assert lo < mid < hi
    assert mid == pytest.approx((lo * hi) ** 0.5, rel=0.05)


def test_nearest_shape_by_kind_dataset_and_group():
    assert estimate(CAL, moons(**{"model.kind": "bp", "train.T": 1, "model.width": 128}), 2).shape.startswith(
        "two_moons bp w128")
    # two_circles has no shape of its own: the toy family (two_moons) is used
    assert estimate(CAL, moons(**{"data.dataset": "two_circles", "model.width": 1024}), 2).shape.startswith(
        "two_moons pc w1024")
    fm = TrialConfig().replace(**{"data.dataset": "fashion_mnist", "data.batch_size": 128, "model.width": 1024})
    assert estimate(CAL, fm, 2).shape.startswith("fashion_mnist pc w1024")
    # group size: the measured one nearest in log (20 -> 32, 4 -> 2)
    assert estimate(CAL, moons(**{"model.width": 128}), 20).shape.endswith("n32")
    assert estimate(CAL, moons(**{"model.width": 128}), 4).shape.endswith("n2")
    assert seconds(moons(**{"model.width": 128}), 32) < seconds(moons(**{"model.width": 128}), 2)


def test_another_T_is_scaled_by_flops_and_no_comparable_shape_is_none():
    t8, t16 = seconds(moons(**{"model.width": 128})), seconds(moons(**{"model.width": 128, "train.T": 16}))
    assert 1.5 < t16 / t8 < 2.1
    constant = TrialConfig().replace(**{"data.dataset": "fashion_mnist", "data.batch_size": 128, "data.resize": 28,
                                        "data.n_classes": 784, "model.width": 784, "model.constant_width": True})
    assert estimate(CAL, constant, 2) is None


def test_tiny_trials_keep_the_floor():
    assert seconds(moons(**{"model.width": 32, "train.epochs": 1, "data.n_samples": 64})) == MIN_TRIAL_S


def test_plan_uses_the_calibration_per_group():
    trials = [moons(**{"model.width": w, "seed": s}) for w in (32, 1024) for s in range(4)]
    flop = pack_tasks(trials, grid="g", task_minutes=60, cost=CostModel.for_platform("cpu"))
    cal = pack_tasks(trials, grid="g", task_minutes=60, cost=CostModel.for_platform("cpu", CAL))
    assert flop.estimate == "flop" and flop.calibration is None
    assert flop.tasks[0].est_s == pytest.approx(
        2 * GROUP_OVERHEAD_S + sum(estimate_trial_seconds(c, flops_per_s=FLOPS_PER_S["cpu"]) for c in trials), abs=0.1)
    assert cal.estimate == "calibration" and cal.calibration_date == CAL.date and cal.flop_groups == 0
    want = sum(seconds(c, 4) for c in trials) + (4.02 + 0.1) + (9.02 + 0.1)  # compile + data load per group
    assert sum(t.est_s for t in cal.tasks) == pytest.approx(want, abs=0.1)
    assert [(p.width, p.programs, p.trials, p.compile_s) for p in cal.programs] == [(32, 1, 4, 4.0), (1024, 1, 4, 9.0)]


def test_plan_falls_back_to_flops_for_shapes_the_calibration_lacks():
    trials = [TrialConfig().replace(**{"data.dataset": "fashion_mnist", "data.batch_size": 128, "data.resize": 28,
                                       "data.n_classes": 784, "model.width": 784, "model.constant_width": True})]
    plan = pack_tasks(trials, grid="g", task_minutes=60, cost=CostModel.for_platform("cpu", CAL))
    assert plan.estimate == "calibration" and plan.flop_groups == 1
    flop_s = estimate_trial_seconds(trials[0], flops_per_s=FLOPS_PER_S["cpu"])
    assert plan.tasks[0].est_s == pytest.approx(GROUP_OVERHEAD_S + flop_s, abs=0.1)


def test_calibrated_sizing_splits_a_long_group_by_measured_seconds():
    trials = [moons(**{"model.width": 1024, "seed": s}) for s in range(40)]  # group of 40 -> measured n=32
    plan = pack_tasks(trials, grid="g", task_minutes=1, cost=CostModel.for_platform("cpu", CAL))
    # 0.8 s per trial-epoch x 8 epochs = 6.4 s per trial; compile 9.32 s + data load 0.1 s per piece:
    # (60 - 9.42) / 6.4 -> at most 7 trials per task, so 6 near-equal pieces
    assert sorted(len(t.trial_ids) for t in plan.tasks) == [6, 6, 7, 7, 7, 7]
    assert all(t.est_s <= 60 for t in plan.tasks)


# --- the dry run ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo():
    return load_grid(CODE_ROOT / "grids" / "demo.yaml")


def cpu_options(root: Path) -> LaunchOptions:
    return LaunchOptions(root=root, executor="slurm", platform="cpu", partition="cpu", time_min=30,
                         container=False, preflight=False)


def test_dry_run_says_flop_model_without_a_calibration(demo, tmp_path):
    d = dry_run(demo, cpu_options(tmp_path))
    assert d.estimate == {"source": "flop", "file": None, "date": None, "flop_groups": 0}
    text = render_dry_run(d)
    assert ("estimate: FLOP model (no calibration: a trial's time may be 0.8-20x this estimate, small shapes the "
            f"most; run python -m pc.calibrate); projected {d.device_hours} cpu device-hours") in text
    assert "per shape (calibrated)" not in text


def test_dry_run_uses_a_calibration_when_present_and_says_so(demo, tmp_path):
    path = write_calibration(tmp_path / FOLDER, CAL)
    write_calibration(tmp_path / FOLDER, dataclasses.replace(CAL, platform="cuda", device_kind="NVIDIA H200",
                                                                    date="2027-01-01"))
    d = dry_run(demo, cpu_options(tmp_path))
    assert d.estimate == {"source": "calibration", "file": str(path), "date": CAL.date, "flop_groups": 0}
    text = render_dry_run(d)
    assert f"estimate: calibration {path}, {CAL.date}; projected {d.device_hours} cpu device-hours" in text
    assert "per shape (calibrated):" in text and "compile s/program" in text
    demo_widths = {c["width"] for c in d.programs}
    assert demo_widths == {16, 32} and all(c["compile_s"] is not None for c in d.programs)
    # the JSON keeps every old key and adds the new ones
    assert {"est_hours", "max_task_minutes", "arrays", "sizing"} <= set(d.__dict__)
    assert json.loads(json.dumps(d.__dict__, default=str))["estimate"]["source"] == "calibration"


def test_dry_run_refuses_a_damaged_calibration_naming_it(demo, tmp_path):
    folder = tmp_path / FOLDER
    folder.mkdir()
    (folder / "cpu.json").write_text(json.dumps({**to_dict(CAL), "shapes": [{"dataset": "two_moons"}]}))
    with pytest.raises(OptionsError, match=r"calibration: .*cpu\.json: calibration\.shapes\[0\]\.groups"):
        dry_run(demo, cpu_options(tmp_path))


def test_the_cli_dry_run_prints_the_estimate_line(tmp_path):
    write_calibration(tmp_path / FOLDER, CAL)
    out = subprocess.run([sys.executable, "-m", "launch", str(CODE_ROOT / "grids" / "demo.yaml"), "--dry-run",
                          "--executor", "slurm", "--platform", "cpu", "--no-preflight", "--root", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=CODE_ROOT)
    assert out.returncode == 0, out.stderr
    assert f"estimate: calibration {tmp_path / FOLDER / 'cpu.json'}" in out.stdout


def constant(width: int) -> TrialConfig:
    side = int(width ** 0.5)
    return TrialConfig().replace(**{"data.dataset": "fashion_mnist", "data.batch_size": 128, "data.resize": side,
                                    "data.n_classes": width, "model.width": width, "model.constant_width": True})


def test_constant_width_shapes_scale_in_and_out_with_the_width():
    shapes = []
    for w, s in ((196, 3.0), (784, 40.0)):
        cfg = constant(w)
        shapes.append(ShapeCost(dataset="fashion_mnist", kind="pc", width=w, T=8, batch_size=128, constant_width=True,
                                dims=layer_dims(cfg), n_batches=train_batches(cfg), timed_batches=4,
                                groups=(GroupCost(n=2, compile_s=5.0, trial_epoch_s=s, epochs_timed=2),)))
    cal = dataclasses.replace(CAL, shapes=(*CAL.shapes, *shapes))
    at = {w: estimate(cal, constant(w), 2).trial_s / 8 for w in (196, 324, 784, 2304)}
    assert at[196] == pytest.approx(3.0) and at[784] == pytest.approx(40.0)
    assert 3.0 < at[324] < 40.0
    # beyond the widest: all four layers grow, so ~ (2304 / 784)^2 x the FLOPs
    assert at[2304] == pytest.approx(40.0 * (2304 / 784) ** 2, rel=0.01)
    assert estimate(cal, constant(784), 2).shape.startswith("fashion_mnist pc w784")
    # a non-constant FashionMNIST trial never uses the constant shapes
    assert estimate(cal, TrialConfig().replace(**{"data.dataset": "fashion_mnist", "data.batch_size": 128,
                                                  "model.width": 784}), 2).shape.startswith("fashion_mnist pc w1024")


# --- the persistent compilation cache and the task start (bench/plan_accuracy.py found both) ------------------

def with_trace(cal: Calibration, trace_s: float, task_start_s: float | None = None) -> Calibration:
    """`cal` as a newer calibration writes it: trace + lowering seconds per program and the task start."""
    shapes = tuple(dataclasses.replace(s, groups=tuple(dataclasses.replace(g, trace_s=trace_s) for g in s.groups))
                   for s in cal.shapes)
    return dataclasses.replace(cal, shapes=shapes, task_start_s=task_start_s)


def test_program_key_ignores_only_what_the_compiled_program_does_not_see():
    base = moons(**{"model.width": 128})
    same = [base.replace(**{"data.dataset": "two_circles"}), base.replace(**{"data.seed": 7}),
            base.replace(**{"data.noise": 0.05}), base.replace(seed=3, **{"train.h_lr": 0.3, "train.w_lr": 0.1})]
    assert all(program_key(c) == program_key(base) for c in same)
    other = [base.replace(**{"model.width": 256}), base.replace(**{"train.T": 4}),
             base.replace(**{"model.kind": "bp", "train.T": 1}), base.replace(**{"data.n_samples": 512}),
             base.replace(**{"model.activation": "tanh"})]
    assert len({program_key(c) for c in [base, *other]}) == 1 + len(other)


def test_a_repeated_program_pays_the_cache_load_not_the_compile():
    trials = [moons(**{"data.dataset": ds, "model.width": 128, "seed": s})
              for ds in ("two_moons", "two_circles") for s in range(4)]
    per_trial = sum(seconds(c, 4) for c in trials)
    cal = with_trace(CAL, trace_s=0.5)
    plan = pack_tasks(trials, grid="g", task_minutes=60, cost=CostModel.for_platform("cpu", cal))
    assert len(plan.tasks) == 1 and plan.tasks[0].groups == 2
    # two moons compiles (6.02 s + 0.1 s data); two circles is the same program: trace 0.5 + cache load
    want = per_trial + (6.02 + 0.1) + (0.5 + CACHE_LOAD_S + CAL.data_load_s.get("two_circles", 0.0))
    assert plan.tasks[0].est_s == pytest.approx(want, abs=0.1)
    # a file that did not measure the trace seconds counts a full compile for both (as before)
    old = pack_tasks(trials, grid="g", task_minutes=60, cost=CostModel.for_platform("cpu", CAL))
    assert old.tasks[0].est_s == pytest.approx(per_trial + 2 * 6.02 + 0.1, abs=0.1)
    # two widths are two programs: both compile
    wide = [c.replace(**{"model.width": 1024}) if c.data.dataset == "two_circles" else c for c in trials]
    two = pack_tasks(wide, grid="g", task_minutes=60, cost=CostModel.for_platform("cpu", cal))
    assert two.tasks[0].est_s == pytest.approx(sum(seconds(c, 4) for c in wide) + 6.02 + 0.1 + 9.04, abs=0.1)


def test_pieces_of_a_split_group_compile_once():
    trials = [moons(**{"model.width": 1024, "seed": s}) for s in range(40)]  # 6.4 s per trial (see above)
    plan = pack_tasks(trials, grid="g", task_minutes=1, cost=CostModel.for_platform("cpu", with_trace(CAL, 1.0)))
    est = sorted(t.est_s for t in plan.tasks)
    compiled = [t for t in plan.tasks if t.est_s - 6.4 * len(t.trial_ids) > 5]
    assert len(compiled) == 1  # the first piece pays 9.32 s; the others 1.0 + 0.1 s from the cache
    assert all(e <= 60 for e in est) and sum(len(t.trial_ids) for t in plan.tasks) == 40


def test_each_task_pays_the_measured_start_once():
    trials = [moons(**{"model.width": w, "seed": s}) for w in (32, 1024) for s in range(4)]
    base = pack_tasks(trials, grid="g", task_minutes=60, cost=CostModel.for_platform("cpu", with_trace(CAL, 0.5)))
    started = pack_tasks(trials, grid="g", task_minutes=60,
                        cost=CostModel.for_platform("cpu", with_trace(CAL, 0.5, task_start_s=4.0)))
    assert len(base.tasks) == len(started.tasks) == 1
    assert started.tasks[0].est_s == pytest.approx(base.tasks[0].est_s + 4.0, abs=0.1)
    # the start counts against the task's capacity: a task that fits 60 s without it is cut with it
    one = [moons(**{"model.width": 1024, "seed": s}) for s in range(6)]  # group 6 -> n2: 6 x 8 + 9.02 + 0.1 = 57 s
    fits = pack_tasks(one, grid="g", task_minutes=1, cost=CostModel.for_platform("cpu", with_trace(CAL, 0.5)))
    cut = pack_tasks(one, grid="g", task_minutes=1,
                    cost=CostModel.for_platform("cpu", with_trace(CAL, 0.5, task_start_s=8.0)))
    assert len(fits.tasks) == 1 and len(cut.tasks) == 2
    assert all(t.est_s <= 60 for t in cut.tasks)


def test_a_training_subset_shrinks_the_estimate_of_both_models():
    full = TrialConfig.from_mapping({"data": {"dataset": "fashion_mnist", "batch_size": 128}})
    part = full.replace(**{"data.train_subset": 1000})
    assert train_batches(full) == 468 and train_batches(part) == 7  # whole batches of the first 1,000 images
    assert train_batches(part.replace(**{"data.train_subset": 10**6})) == 468  # more than the set: all of it
    from launch.plan import estimate_trial_seconds

    slow = 1e6  # FLOP/s, so that neither estimate sits at the floor per trial
    ratio = estimate_trial_seconds(full, flops_per_s=slow) / estimate_trial_seconds(part, flops_per_s=slow)
    assert ratio == pytest.approx(59_904 / 896)  # whole batches of 60,000 against those of 1,000
