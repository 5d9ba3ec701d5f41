"""The preflight on literal `scontrol show partition -o` / `scontrol show node -o` text: parsing, the verdict,
the defaults that follow the platform and the partition, and the CLI's refusal (exit 2, one line)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.paths import RunPaths
from launch.options import LaunchOptions
from launch.preflight import (
    Node,
    Partition,
    PreflightError,
    Request,
    check_request,
    judge,
    parse_fields,
    parse_minutes,
    preflight,
    require_fit,
)
from launch.sbatch import executor_parameters, python_command

REPO = Path(__file__).resolve().parents[2]
ROOT = Path("/tmp/pcsweep-preflight-runs")

# As Slurm 22.05 prints them (the local dev cluster and a typical GPU cluster).
PARTITIONS = """\
PartitionName=cpu AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A DefaultTime=NONE \
DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED MaxTime=UNLIMITED MinNodes=0 LLN=NO \
MaxCPUsPerNode=UNLIMITED Nodes=vm PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO \
OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=2 TotalNodes=1 SelectTypeParameters=NONE JobDefaults=(null) \
DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED TRES=cpu=2,mem=22899M,node=1,billing=2
PartitionName=a100 AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO QoS=N/A \
DefaultTime=01:00:00 MaxNodes=1 MaxTime=2-00:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=32 Nodes=g[01-02] \
State=UP TotalCPUs=128 TotalNodes=2 DefMemPerCPU=4000 MaxMemPerNode=256000 TRES=cpu=128,mem=1000G,gres/gpu=8
PartitionName=old Default=NO MaxTime=30 MaxCPUsPerNode=UNLIMITED Nodes=n9 State=DOWN MaxMemPerNode=UNLIMITED
"""
NODES = """\
NodeName=vm Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=3.76 AvailableFeatures=(null) \
ActiveFeatures=(null) Gres=(null) NodeAddr=127.0.0.1 NodeHostName=vm Version=22.05.8 OS=Linux 6.18.44-fc-v1045 #1 \
SMP PREEMPT_DYNAMIC @0  RealMemory=22899 AllocMem=0 FreeMem=21819 Sockets=2 Boards=1 State=IDLE ThreadsPerCore=1 \
TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=cpu  BootTime=2026-12-02T05:40:54
NodeName=g01 CPUTot=64 RealMemory=512000 Gres=gpu:a100:4(S:0-1) State=MIXED Partitions=a100
NodeName=g02 CPUTot=64 RealMemory=512000 Gres=gpu:a100:4(S:0-1) State=DOWN+DRAIN Reason=bad gpu [root@2026] \
Partitions=a100
NodeName=n9 CPUTot=8 RealMemory=16000 Gres=(null) State=DOWN Partitions=old
"""


def cluster() -> list[Partition]:
    nodes = [Node.parse(line) for line in NODES.splitlines()]
    return [Partition.parse(line).with_nodes(nodes) for line in PARTITIONS.splitlines()]


def opts(**kw) -> LaunchOptions:
    return LaunchOptions(root=ROOT, executor="slurm", **kw)


def test_fields_keep_spaces_inside_values():
    f = parse_fields(NODES.splitlines()[0])
    assert f["OS"] == "Linux 6.18.44-fc-v1045 #1 SMP PREEMPT_DYNAMIC @0" and f["RealMemory"] == "22899"
    assert parse_fields(NODES.splitlines()[2])["Reason"] == "bad gpu [root@2026]"


@pytest.mark.parametrize(("text", "minutes"), [
    ("UNLIMITED", None), ("INFINITE", None), ("30", 30), ("30:01", 31), ("01:00:00", 60), ("2-00:00:00", 2880),
    ("1-12", 2160), ("1-00:30", 1470)])
def test_slurm_time_limits_parse_to_minutes(text, minutes):
    assert parse_minutes(text) == minutes


def test_nodes_and_partitions_parse():
    vm, g01, g02, n9 = (Node.parse(line) for line in NODES.splitlines())
    assert (vm.cpus, vm.memory_mb, vm.gpus, vm.partitions, vm.usable) == (2, 22899, 0, ("cpu",), True)
    assert (g01.cpus, g01.gpus, g01.usable) == (64, 4, True) and not g02.usable and not n9.usable
    cpu, a100, old = cluster()
    assert cpu.default and cpu.max_time_min is None and [n.name for n in cpu.nodes] == ["vm"]
    assert (a100.max_time_min, a100.max_cpus_per_node, a100.max_mem_per_node_mb) == (2880, 32, 256000)
    assert a100.max_cpus == 32
    assert old.state == "DOWN" and old.max_time_min == 30
    assert "up to 2 CPUs" in cpu.offers() and "0 GPU(s)" in cpu.offers() and "MaxTime UNLIMITED" in cpu.offers()


def test_requests_that_can_never_run_name_the_flag():
    cpu, a100, old = cluster()
    assert check_request(cpu, Request(0, 2, None, 60)) == []
    problems = check_request(cpu, Request(1, 4, 64.0, 60))
    assert [p.split(":")[0] for p in problems] == ["--gpus 1", "--cpus 4", "--mem 64"]
    assert "use --gpus 0" in problems[0]
    assert check_request(a100, Request(4, 32, 200.0, 2880)) == []
    assert check_request(a100, Request(8, 33, 300.0, 2881)) == [
        "--gpus 8: its nodes have at most 4 GPU(s) (GRES)", "--cpus 33: at most 32 CPUs per task there",
        "--mem 300: at most 250 GB per task there", "--time 2881: MaxTime is 2880 min"]
    assert any("DOWN" in p for p in check_request(old, Request(0, 1, None, 10)))


def test_a_request_that_fits_only_down_or_drained_nodes_is_refused():
    # a100 has g01 (MIXED, 4 GPUs) and g02 (DOWN+DRAIN): a request both fit runs on g01
    _, a100, _ = cluster()
    assert check_request(a100, Request(4, 32, 200.0, 60)) == []
    # with g01 gone from the partition only the drained node fits: SLURM would pend with ReqNodeNotAvail
    drained_only = dataclasses.replace(a100, nodes=tuple(n for n in a100.nodes if n.name == "g02"))
    (problem,) = check_request(drained_only, Request(4, 32, 200.0, 60))
    assert problem.startswith("every node that fits (g02 DOWN+DRAIN) is down, drained or failing")
    # a node that is up but too small does not count as fitting either
    small_up = dataclasses.replace(a100.nodes[0], cpus=8)
    mixed = dataclasses.replace(a100, nodes=(small_up, a100.nodes[1]))
    assert check_request(mixed, Request(4, 32, None, 60)) == [
        "every node that fits (g02 DOWN+DRAIN) is down, drained or failing; ask an admin, or change the request "
        "to fit a node that is up"]
    assert check_request(mixed, Request(4, 8, None, 60)) == []  # fits g01 (8 CPUs, up)


def test_verdict_for_default_unknown_and_fitting_partitions():
    parts = cluster()
    v = judge(parts, None, Request(0, 1, None, 60))
    assert (v.partition, v.checked, v.refused) == ("cpu", True, False)
    v = judge(parts, "gpu", Request(0, 1, None, 60))
    assert v.refused and "no such partition (the cluster has: a100, cpu, old)" in v.message()
    v = judge(parts, "cpu", Request(1, 4, None, 60))
    msg = v.message()
    assert "\n" not in msg and "--gpus 1" in msg and "--cpus 4" in msg and "offers up to 2 CPUs" in msg
    assert "--no-preflight" in msg


def test_cpu_platform_asks_no_gpu_and_cpus_follow_the_partition():
    parts = cluster()
    v, o = preflight(opts(platform="cpu", partition="cpu"), partitions=parts)
    assert not v.refused and (o.gpu_count, o.cpus) == (0, 2)  # default 4 lowered to the 2-CPU node
    params = executor_parameters(o, "demo", RunPaths.of("demo", ROOT))
    assert "gpus_per_node" not in params and params["cpus_per_task"] == 2
    image = LaunchOptions(root=ROOT, image="/i.sif", platform="cpu")
    assert "--nv" not in python_command(image, RunPaths.of("d", ROOT))
    v, o = preflight(opts(platform="cpu", partition="cpu", gpus=1), partitions=parts)  # --gpus says so
    assert v.refused and o.gpu_count == 1
    v, o = preflight(opts(partition="a100"), partitions=parts)  # cuda: 1 GPU, 4 CPUs
    assert not v.refused and (o.gpu_count, o.cpus) == (1, 4)
    v, o = preflight(opts(partition="cpu", cpus=4, platform="cpu", preflight=False), partitions=parts)
    assert not v.checked and v.note == "--no-preflight" and o.cpus == 4
    v, o = preflight(LaunchOptions(root=ROOT, executor="local"), partitions=parts)
    assert not v.checked


def test_cli_refuses_a_request_with_exit_2_and_one_line_before_writing(tmp_path):
    """Through the real CLI against whatever scontrol answers here: a made-up partition is always refused;
    without scontrol the preflight is skipped and sbatch is missing, and with SLURM installed but stopped
    scontrol fails: either way the launch still exits 2."""
    r = subprocess.run([sys.executable, "-m", "launch", "grids/demo.yaml", "--root", str(tmp_path / "runs"),
                        "--executor", "slurm", "--partition", "no-such-part", "--no-container", "--platform", "cpu",
                        "train.epochs=1"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith("launch: waiting for `")]
    assert len(lines) == 1 and "Traceback" not in r.stderr  # a slow scontrol may first say it is being waited for
    assert "no-such-part" in r.stderr or "sbatch is not on PATH" in r.stderr or "SLURM does not answer" in r.stderr
    assert not (tmp_path / "runs").exists()


def stand_in_scontrol(tmp_path: Path, monkeypatch, body: str) -> None:
    """An `scontrol` first on PATH that runs the shell `body` (a stand-in: a controller that is down or stuck
    cannot be made on demand without SLURM; tests/slurm has the real one)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")


@pytest.mark.parametrize("stderr, shown", [
    ("slurm_load_partitions error: Unable to contact slurm controller (connect failure)",
     "scontrol: slurm_load_partitions error: Unable to contact slurm controller (connect failure))"),
    ("slurm_load_node error: Socket timed out on send/recv operation",
     "scontrol: slurm_load_node error: Socket timed out on send/recv operation)"),
])
def test_a_scontrol_that_cannot_reach_the_controller_refuses_the_launch_in_one_line(tmp_path, monkeypatch, stderr,
                                                                                   shown):
    """A stand-in scontrol (the down controller cannot be made here without SLURM; tests/slurm has the real one)
    that exits 1: the launch is refused, not waved through to an sbatch that would fail the same way."""
    stand_in_scontrol(tmp_path, monkeypatch, f"echo '{stderr}' >&2\nexit 1")
    v, o = preflight(opts(partition="gpu"))
    assert v.refused and v.checked and v.down and o.cpus is None
    assert v.message().startswith("SLURM does not answer here (") and shown in v.message()
    assert "\n" not in v.message() and "--no-preflight" in v.message()
    assert v.render() == f"preflight: REFUSED, a launch would exit 2: {v.message()}"
    with pytest.raises(PreflightError, match=r"^SLURM does not answer here"):
        require_fit(v)
    v, _ = preflight(opts(partition="gpu", preflight=False))  # --no-preflight never asks scontrol
    assert not v.refused and v.note == "--no-preflight"


def test_a_scontrol_that_never_answers_is_announced_bounded_and_not_asked_again(tmp_path, monkeypatch, capsys):
    """A stand-in scontrol that hangs (a stuck controller cannot be made on demand here): the wait is announced on
    stderr with its bound, ends at the timeout with what is done without the answer, and the next SLURM question
    of the same command returns at once instead of waiting again (a dry run sat silent for 40 s)."""
    import time

    from launch.plan import read_max_array_size

    stand_in_scontrol(tmp_path, monkeypatch, "exec sleep 60")
    t0 = time.monotonic()
    v, _ = preflight(opts(partition="gpu"), timeout_s=3)
    assert not v.checked and v.note == "scontrol did not answer" and 2.5 < time.monotonic() - t0 < 10
    err = capsys.readouterr().err.splitlines()
    assert err == ["launch: waiting for `scontrol show partition -o` (SLURM is slow to answer; at most 3 s)",
                   "launch: `scontrol show partition -o` did not answer in 3 s: the preflight is skipped; SLURM "
                   "commands are not asked again by this command"]
    t0 = time.monotonic()
    assert read_max_array_size() == 1001 and time.monotonic() - t0 < 1


@pytest.mark.parametrize("stderr", ["", "slurm_load_partitions error: Access/permission denied"])
def test_a_scontrol_that_fails_for_another_reason_skips_the_check(tmp_path, monkeypatch, stderr):
    """A site may hide partitions or nodes (PrivateData): scontrol then fails, but sbatch can work, so the preflight
    is skipped rather than refusing every launch (a stand-in scontrol, as above)."""
    stand_in_scontrol(tmp_path, monkeypatch, f"echo '{stderr}' >&2\nexit 1")
    v, _ = preflight(opts(partition="gpu"))
    assert not v.refused and not v.checked and v.note == "scontrol did not answer"
