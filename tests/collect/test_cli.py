"""`python -m collect` in a subprocess: report, --json, --strict exit code, exit 2, GRID as a YAML path,
and that neither `import collect` nor a whole collect loads jax (it runs on login nodes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from collect_cases import GRID, synthetic_trial


def _run(args: list[str], repo_root, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    return subprocess.run([sys.executable, *args], cwd=repo_root, env=env, capture_output=True, text=True,
                          timeout=120, **kw)


def _populate(run) -> tuple[str, str]:
    a, b = synthetic_trial(1), synthetic_trial(2, diverge_at=(0, 1))
    run.shard("s1", [a, b])
    run.failed(synthetic_trial(3).trial_id, error="Traceback...\nValueError: nan in loss")
    missing = synthetic_trial(4).trial_id
    run.manifest([a.trial_id, b.trial_id, synthetic_trial(3).trial_id, missing])
    return a.trial_id, missing


def test_cli_text_report_and_strict_exit_code(run, repo_root):
    _, missing = _populate(run)
    p = _run(["-m", "collect", GRID, "--root", str(run.root), "--no-progress"], repo_root)
    assert p.returncode == 0, p.stderr
    for expected in ("expected   4 (from submissions)", "complete   2  (ok 1, diverged 1)", "failed     1",
                     "ValueError: nan in loss (host node7, job_id 123_4, attempt 1)", f"missing    1  ({missing})",
                     "duplicate  0", "corrupt    0"):
        assert expected in p.stdout, p.stdout
    strict = _run(["-m", "collect", GRID, "--root", str(run.root), "--strict", "--no-progress"], repo_root)
    assert strict.returncode == 1 and "--strict: 1 missing, 1 failed" in strict.stderr
    assert "unchanged" in strict.stdout  # the second run read nothing


def test_cli_strict_passes_when_clean_and_json_is_one_object(run, repo_root):
    a = synthetic_trial(1)
    run.shard("s1", [a])
    run.manifest([a.trial_id])
    p = _run(["-m", "collect", GRID, "--root", str(run.root), "--strict", "--json", "--no-progress"], repo_root)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert (d["expected"], d["complete"], d["n_missing"], d["mode"]) == (1, 1, 0, "full")


def test_cli_missing_run_folder_exits_2(run, repo_root):
    p = _run(["-m", "collect", "nosuchgrid", "--root", str(run.root)], repo_root)
    assert p.returncode == 2 and "no such run folder" in p.stderr and "--root" in p.stderr


def test_cli_grid_yaml_path_uses_its_name(run, repo_root, tmp_path):
    run.shard("s1", [synthetic_trial(1)])
    grid_file = tmp_path / "mygrid.yaml"
    grid_file.write_text(f"name: {GRID}\ndefaults: {{}}\n")
    p = _run(["-m", "collect", str(grid_file), "--root", str(run.root), "--json", "--no-progress"], repo_root)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["grid"] == GRID
    bad = tmp_path / "noname.yaml"
    bad.write_text("defaults: {}\n")
    p = _run(["-m", "collect", str(bad), "--root", str(run.root)], repo_root)
    assert p.returncode == 2 and "name" in p.stderr


def test_cli_help_explains_every_option(repo_root):
    p = _run(["-m", "collect", "--help"], repo_root)
    assert p.returncode == 0
    for option in ("--root", "--rebuild", "--strict", "--json", "--no-progress", "GRID", "Exit status"):
        assert option in p.stdout


def test_collect_never_loads_jax(run, repo_root):
    _populate(run)
    run.paths.grid_yaml.write_text(f"name: {GRID}\ndefaults: {{seed: 0}}\nsweep:\n  - axes: {{seed: [1, 2]}}\n")
    code = textwrap.dedent(f"""
        import sys
        import collect
        assert "jax" not in sys.modules and "pandas" not in sys.modules and "h5py" not in sys.modules, "import"
        report = collect.collect({GRID!r}, {str(run.root)!r}, progress=False)
        df = collect.load_summary({GRID!r}, root={str(run.root)!r})
        assert report.complete == 2 and len(df) == 2
        assert report.expected_source == "grid.yaml", report.notes  # grids.grid ran too
        assert "jax" not in sys.modules, sorted(m for m in sys.modules if m.startswith("jax"))
        print("ok")
    """)
    p = _run(["-c", code], repo_root)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_grid_name_reads_the_repository_grid_files_with_joint_axes(repo_root):
    # grids/*.yaml use flow sequences as keys (`[train.w_optimizer, train.w_momentum]:`), which
    # yaml.safe_load refuses; `python -m collect grids/demo.yaml` must still find the name
    # (collect resolves GRID with grids.resolve, the one rule of every command)
    from grids import resolve

    assert resolve(str(repo_root / "grids" / "demo.yaml")).name == "demo"
    assert resolve(str(repo_root / "grids" / "stability.yaml")).name == "stability"
    assert resolve("demo").name == "demo"
