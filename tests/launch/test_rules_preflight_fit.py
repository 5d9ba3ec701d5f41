"""The preflight's fit rule (`check_request`) as the pure function it is, on the edges of every limit, and the
parsers, offers and verdict around it (fast tier: no SLURM; `scontrol` is a stand-in where one is needed).

The bugs this file exists to catch (issue 22): the per-CPU memory limit not multiplied by the CPUs asked; a node
that has the GPUs but not the CPUs (or the other way round) counted as fitting; a request that fits only DOWN or
DRAINED nodes passing the check.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from launch.options import DEFAULT_CPUS, LaunchOptions
from launch.preflight import (
    ControllerDown,
    Node,
    Partition,
    Preflight,
    PreflightError,
    Request,
    _int_or_none,
    _scontrol,
    check_request,
    judge,
    parse_fields,
    parse_minutes,
    preflight,
    read_partitions,
    require_fit,
    resolved_request,
)

ROOT = Path("/tmp/pcsweep-preflight-fit-runs")


def node(name: str = "n1", cpus: int = 32, memory_mb: int | None = 64_000, gpus: int = 4, state: str = "IDLE",
         partitions: tuple[str, ...] = ("p",)) -> Node:
    return Node(name, cpus, memory_mb, gpus, state, partitions)


def part(*nodes: Node, state: str = "UP", max_time: int | None = 600, max_cpus: int | None = None,
         max_mem_node: int | None = None, max_mem_cpu: int | None = None, name: str = "p",
         default: bool = False) -> Partition:
    return Partition(name, state, default, max_time, max_cpus, max_mem_node, max_mem_cpu, tuple(nodes))


def req(gpus: int = 1, cpus: int = 4, mem_gb: float | None = None, time_min: int = 60) -> Request:
    return Request(gpus, cpus, mem_gb, time_min)


# --- check_request: one limit at a time, at and just past its edge -------------------------------------------

def test_a_request_within_every_limit_fits():
    assert check_request(part(node()), req(4, 32, 62.5, 600)) == []


@pytest.mark.parametrize("state", ["UP", "up", "Up"])
def test_an_up_partition_in_any_case_is_up(state):
    assert check_request(part(node(), state=state), req()) == []


@pytest.mark.parametrize("state", ["DOWN", "DRAIN", "INACTIVE"])
def test_a_partition_not_up_is_refused_and_the_request_is_judged_no_further(state):
    assert check_request(part(node(), state=state), req()) == [
        f"the partition is {state} (not UP), so nothing starts there"]
    # a request that also fits no node gets only the partition's problem (the node check needs none before it)
    assert check_request(part(node(gpus=4), node("n2", gpus=0, cpus=64), state=state), req(4, 64)) == [
        f"the partition is {state} (not UP), so nothing starts there"]


def test_a_partition_without_nodes_says_so_after_its_state():
    assert check_request(part(), req()) == ["the partition has no nodes"]
    assert check_request(part(state="DOWN"), req()) == [
        "the partition is DOWN (not UP), so nothing starts there", "the partition has no nodes"]


def test_gpus_at_the_largest_node_fit_and_one_more_does_not():
    p = part(node("a", gpus=2), node("b", gpus=4), node("c", gpus=1))
    assert check_request(p, req(gpus=4)) == []
    assert check_request(p, req(gpus=5)) == ["--gpus 5: its nodes have at most 4 GPU(s) (GRES)"]


def test_a_gpu_request_on_a_cpu_partition_suggests_gpus_0():
    p = part(node(gpus=0))
    assert check_request(p, req(gpus=0)) == []
    assert check_request(p, req(gpus=1)) == [
        "--gpus 1: its nodes have at most 0 GPU(s) (GRES) (use --gpus 0 for a CPU partition)"]


def test_cpus_at_the_largest_node_fit_and_one_more_does_not():
    p = part(node("a", cpus=16), node("b", cpus=32))
    assert check_request(p, req(cpus=32)) == []
    assert check_request(p, req(cpus=33)) == ["--cpus 33: at most 32 CPUs per task there"]


def test_max_cpus_per_node_caps_the_largest_node():
    p = part(node(cpus=64), max_cpus=24)
    assert p.max_cpus == 24
    assert check_request(p, req(cpus=24)) == []
    assert check_request(p, req(cpus=25)) == ["--cpus 25: at most 24 CPUs per task there"]
    assert part(node(cpus=16), max_cpus=24).max_cpus == 16  # a cap above the nodes changes nothing
    assert part().max_cpus == 0 and part(max_cpus=8).max_cpus == 0


def test_memory_is_not_checked_without_mem():
    assert check_request(part(node(memory_mb=1000), max_mem_node=10, max_mem_cpu=1), req(mem_gb=None)) == []


def test_memory_at_the_largest_node_fits_and_more_does_not():
    p = part(node("a", memory_mb=16 * 1024), node("b", memory_mb=32 * 1024))
    assert check_request(p, req(mem_gb=32.0)) == []
    assert check_request(p, req(mem_gb=32.5)) == ["--mem 32.5: at most 32 GB per task there"]


def test_max_mem_per_node_caps_the_nodes_memory():
    p = part(node(memory_mb=64 * 1024), max_mem_node=8 * 1024)
    assert check_request(p, req(mem_gb=8.0)) == []
    assert check_request(p, req(mem_gb=9)) == ["--mem 9: at most 8 GB per task there"]
    # a cap above the node's memory: the node decides
    assert check_request(part(node(memory_mb=4 * 1024), max_mem_node=8 * 1024), req(mem_gb=5)) == [
        "--mem 5: at most 4 GB per task there"]


def test_the_per_cpu_memory_limit_is_multiplied_by_the_cpus_asked():
    p = part(node(memory_mb=256 * 1024, cpus=64), max_mem_cpu=2 * 1024)
    assert check_request(p, req(cpus=4, mem_gb=8.0)) == []  # 4 CPUs x 2 GB
    assert check_request(p, req(cpus=4, mem_gb=8.5)) == ["--mem 8.5: at most 8 GB per task there"]
    assert check_request(p, req(cpus=1, mem_gb=8.0)) == ["--mem 8: at most 2 GB per task there"]
    assert check_request(p, req(cpus=16, mem_gb=32.0)) == []


def test_the_smallest_of_the_memory_limits_applies():
    p = part(node(memory_mb=40 * 1024, cpus=64), max_mem_node=30 * 1024, max_mem_cpu=5 * 1024)
    assert check_request(p, req(cpus=4, mem_gb=20.0)) == []  # per cpu 20, per node 30, node 40
    assert check_request(p, req(cpus=4, mem_gb=21.0)) == ["--mem 21: at most 20 GB per task there"]
    assert check_request(p, req(cpus=8, mem_gb=31.0)) == ["--mem 31: at most 30 GB per task there"]
    big = dataclasses.replace(p, max_mem_per_node_mb=None)
    assert check_request(big, req(cpus=16, mem_gb=41.0)) == ["--mem 41: at most 40 GB per task there"]


def test_nodes_of_unknown_memory_and_no_partition_limit_never_refuse_memory():
    assert check_request(part(node(memory_mb=None)), req(mem_gb=10_000.0)) == []
    assert check_request(part(node(memory_mb=None), max_mem_node=1024), req(mem_gb=2.0)) == [
        "--mem 2: at most 1 GB per task there"]


def test_time_at_max_time_fits_and_a_minute_more_does_not():
    p = part(node(), max_time=120)
    assert check_request(p, req(time_min=120)) == []
    assert check_request(p, req(time_min=121)) == ["--time 121: MaxTime is 120 min"]
    assert check_request(part(node(), max_time=None), req(time_min=10**6)) == []


def test_every_problem_is_listed_in_flag_order():
    p = part(node(gpus=1, cpus=2, memory_mb=1024), max_time=10)
    assert [x.split(":")[0] for x in check_request(p, req(2, 3, 2.0, 11))] == ["--gpus 2", "--cpus 3", "--mem 2",
                                                                               "--time 11"]


# --- one node must hold the whole request -------------------------------------------------------------------

GPU_NODE = node("gpu1", cpus=8, memory_mb=64 * 1024, gpus=4)
CPU_NODE = node("cpu1", cpus=64, memory_mb=512 * 1024, gpus=0)
NO_SINGLE_NODE = "no single node has --gpus {g}, --cpus {c} and --mem {m} together"


def test_a_node_with_only_the_gpus_or_only_the_cpus_does_not_fit():
    p = part(GPU_NODE, CPU_NODE)
    assert check_request(p, req(4, 8)) == []  # the GPU node has both
    assert check_request(p, req(0, 64)) == []  # the CPU node has both
    assert check_request(p, req(4, 9)) == [NO_SINGLE_NODE.format(g=4, c=9, m="default")]
    assert check_request(p, req(1, 64)) == [NO_SINGLE_NODE.format(g=1, c=64, m="default")]


def test_a_node_with_only_the_memory_or_only_the_gpus_does_not_fit():
    p = part(GPU_NODE, CPU_NODE)
    assert check_request(p, req(4, 8, mem_gb=64.0)) == []
    assert check_request(p, req(4, 8, mem_gb=65.0)) == [NO_SINGLE_NODE.format(g=4, c=8, m=65.0)]
    assert check_request(p, req(0, 8, mem_gb=65.0)) == []  # the CPU node
    # a node of unknown memory fits any --mem
    assert check_request(part(dataclasses.replace(GPU_NODE, memory_mb=None), CPU_NODE), req(4, 8, 65.0)) == []


def test_a_request_that_fits_only_down_or_drained_nodes_is_refused():
    down = dataclasses.replace(GPU_NODE, name="g1", state="DOWN")
    drained = dataclasses.replace(GPU_NODE, name="g2", state="IDLE+DRAIN")
    p = part(down, drained, CPU_NODE)
    assert check_request(p, req(4, 8)) == [
        "every node that fits (g1 DOWN, g2 IDLE+DRAIN) is down, drained or failing; ask an admin, or change the "
        "request to fit a node that is up"]
    assert check_request(p, req(0, 8)) == []  # the CPU node is up and fits
    up = dataclasses.replace(GPU_NODE, name="g3", state="MIXED")
    assert check_request(part(down, up, drained), req(4, 8)) == []


def test_an_up_node_too_small_does_not_rescue_a_request_only_a_down_node_fits():
    small_up = dataclasses.replace(GPU_NODE, name="small", cpus=4)
    down = dataclasses.replace(GPU_NODE, name="big", state="DOWN*")
    (problem,) = check_request(part(small_up, down), req(4, 8))
    assert problem.startswith("every node that fits (big DOWN*) is down")


def test_the_down_message_names_at_most_four_nodes():
    downs = [dataclasses.replace(GPU_NODE, name=f"g{i}", state="DOWN") for i in range(6)]
    (problem,) = check_request(part(*downs), req(4, 8))
    assert "(g0 DOWN, g1 DOWN, g2 DOWN, g3 DOWN)" in problem and "g4" not in problem


@pytest.mark.parametrize("state", ["DOWN", "DOWN*", "DRAIN", "DRAINED", "IDLE+DRAIN", "MIXED+DRAIN", "FAIL",
                                   "FAILING", "INVAL", "FUTURE", "IDLE+NOT_RESPONDING", "POWERED_DOWN", "down",
                                   "idle+drain"])
def test_nodes_in_bad_states_are_not_usable(state):
    assert not node(state=state).usable


@pytest.mark.parametrize("state", ["IDLE", "MIXED", "ALLOCATED", "COMPLETING", "IDLE+CLOUD", "RESERVED", ""])
def test_nodes_in_working_states_are_usable(state):
    assert node(state=state).usable


# --- parsers ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "minutes"), [
    ("UNLIMITED", None), ("unlimited", None), ("INFINITE", None), ("NONE", None), ("", None), ("  ", None),
    (" 30 ", 30), ("0", 0), ("5", 5), ("0:30", 1), ("5:00", 5), ("5:01", 6), ("1:00:00", 60), ("1:00:01", 61),
    ("2:03:00", 123), ("1-0", 1440), ("2-3", 2 * 1440 + 180), ("1-2:3", 1440 + 123), ("1-2:3:4", 1440 + 124),
    ("1-2:3:0", 1440 + 123), ("10-00:00:00", 14400)])
def test_slurm_time_limits_in_every_form(text, minutes):
    assert parse_minutes(text) == minutes


@pytest.mark.parametrize(("text", "value"), [
    (None, None), ("123", 123), ("123M", 123), ("0", 0), ("UNLIMITED", None), ("(null)", None), ("N/A", None),
    ("", None), ("12G", None)])
def test_scontrol_counts(text, value):
    assert _int_or_none(text) == value


def test_fields_split_only_before_a_key():
    assert parse_fields("  A=1 B=x y z C/d=3 D:e=4 f.g=5 =6 H=  ") == {
        "A": "1", "B": "x y z", "C/d": "3", "D:e": "4", "f.g": "5 =6", "H": ""}
    assert parse_fields("noequals A=1") == {"A": "1"}
    assert parse_fields("A=1=2") == {"A": "1=2"}


def test_node_cpus_prefer_the_effective_count():
    assert Node.parse("NodeName=a CPUEfctv=6 CPUTot=8").cpus == 6
    assert Node.parse("NodeName=a CPUTot=8").cpus == 8
    assert Node.parse("NodeName=a CPUEfctv=(null) CPUTot=8").cpus == 8
    assert Node.parse("NodeName=a").cpus == 0


@pytest.mark.parametrize(("gres", "gpus"), [
    ("(null)", 0), ("gpu:4", 4), ("gpu:a100:4(S:0-1)", 4), ("gpu:a100:2,gpu:v100:1", 3), ("mps:100", 0),
    ("gpu:a100:2(S:0),mps:200", 2), ("gpu:10", 10)])
def test_node_gpus_sum_every_gpu_gres(gres, gpus):
    assert Node.parse(f"NodeName=a Gres={gres}").gpus == gpus


def test_a_node_line_parses_to_its_fields():
    n = Node.parse("NodeName=g7 CPUTot=64 RealMemory=512000 Gres=gpu:4 State=MIXED+DRAIN Partitions=a,b")
    assert n == Node("g7", 64, 512000, 4, "MIXED+DRAIN", ("a", "b"))
    assert Node.parse("CPUTot=1") == Node("?", 1, None, 0, "", ())


def test_a_partition_line_parses_to_its_fields():
    p = Partition.parse("PartitionName=gpu Default=YES MaxTime=1-00:00:00 MaxCPUsPerNode=16 MaxMemPerNode=1000 "
                        "MaxMemPerCPU=100 State=UP")
    assert p == Partition("gpu", "UP", True, 1440, 16, 1000, 100)
    assert Partition.parse("PartitionName=x Default=NO") == Partition("x", "?", False, None, None, None, None)
    assert Partition.parse("State=DOWN").name == "?"


def test_a_partition_keeps_only_its_own_nodes():
    nodes = [node("a", partitions=("gpu",)), node("b", partitions=("gpu2",)), node("c", partitions=("cpu", "gpu"))]
    assert [n.name for n in part(name="gpu").with_nodes(nodes).nodes] == ["a", "c"]
    assert part(name="gp").with_nodes(nodes).nodes == ()


# --- what the partition offers, and the verdict ------------------------------------------------------------------

def test_offers_names_the_largest_node_capped_by_the_partition():
    p = part(node("a", cpus=8, memory_mb=2048, gpus=2), node("b", cpus=4, memory_mb=4096, gpus=0), max_time=90)
    assert p.offers() == ("partition p (up, 2 node(s)) offers up to 8 CPUs, 4 GB memory and 2 GPU(s) per node, "
                          "MaxTime 90 min")
    capped = dataclasses.replace(p, max_mem_per_node_mb=3072, max_time_min=None, max_cpus_per_node=6, state="DOWN")
    assert capped.offers() == ("partition p (down, 2 node(s)) offers up to 6 CPUs, 3 GB memory and 2 GPU(s) per "
                               "node, MaxTime UNLIMITED")
    above = dataclasses.replace(p, max_mem_per_node_mb=8192)
    assert "4 GB memory" in above.offers()
    unknown = part(node(memory_mb=None), max_mem_node=1536)
    assert "1.5 GB memory" in unknown.offers()
    assert "9.77 GB memory" in part(node(memory_mb=10_000)).offers()  # MB / 1024, three digits
    assert "0 GB memory and 0 GPU(s)" in part().offers() and "(up, 0 node(s)) offers up to 0 CPUs" in part().offers()


def cluster() -> list[Partition]:
    return [part(node("c1", gpus=0, cpus=2, partitions=("cpu",)), name="cpu", default=True),
            part(node("g1", gpus=4, cpus=32, partitions=("gpu",)), name="gpu")]


def test_the_verdict_on_the_default_partition():
    v = judge(cluster(), None, req(0, 2))
    assert (v.partition, v.checked, v.problems, v.refused) == ("cpu", True, (), False)
    assert v.offers == cluster()[0].offers() and set(v.partitions) == {"cpu", "gpu"}
    assert v.partitions["gpu"] == cluster()[1].offers()
    assert v.render() == f"preflight: ok; {v.offers}"
    require_fit(v)  # no raise


def test_the_verdict_on_a_named_partition_that_refuses():
    v = judge(cluster(), "gpu", req(5, 2))
    assert v.note == "" and v.checked
    assert v.partition == "gpu" and v.refused and v.problems == ("--gpus 5: its nodes have at most 4 GPU(s) (GRES)",)
    assert v.message() == (f"--partition gpu: this request can never run there: {v.problems[0]}. "
                           f"{cluster()[1].offers()}. Change the flag(s) named, pick another --partition, or pass "
                           "--no-preflight to submit anyway")
    assert v.render() == f"preflight: REFUSED, a launch would exit 2: {v.message()}"
    with pytest.raises(PreflightError, match=r"^--partition gpu: this request can never run there: --gpus 5"):
        require_fit(v)


def test_the_verdict_without_a_default_partition_or_on_an_unknown_one():
    nodefault = [dataclasses.replace(p, default=False) for p in cluster()]
    v = judge(nodefault, None, req())
    assert (v.partition, v.checked, v.refused) == (None, False, False)
    assert v.render() == "preflight: skipped (the cluster has no default partition; give --partition)"
    v = judge(cluster(), "nope", req())
    assert v.problems == ("no such partition (the cluster has: cpu, gpu)",) and v.checked and v.refused
    assert (v.partition, v.note, v.partitions) == ("nope", "", {p.name: p.offers() for p in cluster()})
    assert v.offers == f"{cluster()[0].offers()}; {cluster()[1].offers()}"
    v = judge([], "nope", req())
    assert v.problems == ("no such partition (the cluster has: none)",)
    assert v.offers == "the cluster lists no partition" and v.partitions == {}
    v = judge(cluster(), "gpu", req(5, 64, 1000.0, 10**6))
    assert v.message().startswith(f"--partition gpu: this request can never run there: {'; '.join(v.problems)}. ")
    assert len(v.problems) == 4 and v.message().count("; ") >= 3
    two_defaults = [dataclasses.replace(p, default=True) for p in reversed(cluster())]
    assert judge(two_defaults, None, req(0, 2)).partition == "gpu"  # the first one scontrol lists


def test_a_down_controller_refuses_and_says_so():
    v = Preflight("p", True, "", down="boom")
    assert v.refused and v.message() == (
        "SLURM does not answer here (scontrol: boom): nothing was submitted; check `scontrol ping` and the cluster's "
        "status, or pass --no-preflight to try sbatch anyway")
    assert not Preflight("p", True, "").refused and not Preflight("p", False, "x").refused


# --- defaults that follow the partition, and the whole preflight on given partitions ---------------------------

def test_cpus_default_to_four_lowered_to_the_largest_node():
    o = LaunchOptions(root=ROOT, platform="cpu")
    assert resolved_request(o, None).cpus == DEFAULT_CPUS == 4
    assert resolved_request(o, part()).cpus == 4  # a partition without nodes: the default
    assert resolved_request(o, part(node(cpus=2))).cpus == 2
    assert resolved_request(o, part(node(cpus=1))).cpus == 1
    assert resolved_request(o, part(node(cpus=4))).cpus == 4
    assert resolved_request(o, part(node(cpus=64))).cpus == 4
    assert resolved_request(dataclasses.replace(o, cpus=48), part(node(cpus=2))).cpus == 48  # --cpus as given
    r = resolved_request(LaunchOptions(root=ROOT, mem_gb=3.5, time_min=77, gpus=2), None)
    assert (r.gpus, r.mem_gb, r.time_min) == (2, 3.5, 77)


def test_preflight_resolves_cpus_on_the_default_partition_when_none_is_named():
    v, o = preflight(LaunchOptions(root=ROOT, platform="cpu"), partitions=cluster())
    assert v.partition == "cpu" and not v.refused and o.cpus == 2
    v, o = preflight(LaunchOptions(root=ROOT, partition="gpu"), partitions=cluster())
    assert v.partition == "gpu" and not v.refused and (o.cpus, o.gpu_count) == (4, 1)
    v, o = preflight(LaunchOptions(root=ROOT, partition="nope"), partitions=cluster())
    assert v.refused and o.cpus == 4


def test_preflight_without_a_partition_on_a_cluster_without_a_default_is_skipped():
    nodefault = [dataclasses.replace(p, default=False) for p in cluster()]
    v, o = preflight(LaunchOptions(root=ROOT), partitions=nodefault)
    assert (v.partition, v.checked, o.cpus) == (None, False, 4)


def test_preflight_is_skipped_off_slurm_and_with_no_preflight():
    o = LaunchOptions(root=ROOT, executor="local", partition="x")
    v, same = preflight(o, partitions=cluster())
    assert (v.partition, v.checked, v.note) == ("x", False, "--executor local") and same is o
    v, o2 = preflight(LaunchOptions(root=ROOT, partition="x", preflight=False), partitions=cluster())
    assert (v.partition, v.checked, v.note, o2.cpus) == ("x", False, "--no-preflight", 4)
    assert v.render() == "preflight: skipped (--no-preflight)"


# --- scontrol's text through a stand-in scontrol on PATH ---------------------------------------------------------

SCONTROL = """#!/bin/sh
[ "$1 $3 $#" = "show -o 3" ] || {{ echo "stand-in: unexpected arguments $*" >&2; exit 64; }}
[ -e "{d}/hang" ] && exec sleep 30
[ -e "{d}/fail-$2" ] && exit 1
case "$2" in
  partition) cat "{d}/partition.out" ;;
  node) cat "{d}/node.out" ;;
esac
cat "{d}/err" >&2
exit $(cat "{d}/rc")
"""


@pytest.fixture
def scontrol(tmp_path, monkeypatch):
    """A stand-in `scontrol` first on PATH that prints the text a test writes (no SLURM cluster in the fast
    tier; tests/slurm asks the real one). Returns a function (partitions, nodes, stderr, rc) -> None."""
    d = tmp_path / "bin"
    d.mkdir()
    (d / "scontrol").write_text(SCONTROL.format(d=d))
    (d / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}/usr/bin:/bin")

    def answer(partitions: str = "", nodes: str = "", stderr: str = "", rc: int = 0) -> None:
        (d / "partition.out").write_text(partitions)
        (d / "node.out").write_text(nodes)
        (d / "err").write_text(stderr)
        (d / "rc").write_text(str(rc))

    answer()
    return answer


def test_partitions_and_nodes_are_read_from_scontrol(scontrol):
    scontrol("PartitionName=cpu Default=YES State=UP MaxTime=60\nnot a partition\n"
             "PartitionName=gpu State=UP MaxTime=UNLIMITED\n",
             "NodeName=c1 CPUTot=2 Partitions=cpu\n  NodeName=bad\nNodeName=g1 CPUTot=8 Gres=gpu:2 Partitions=gpu\n")
    cpu, gpu = read_partitions(timeout_s=10)
    assert (cpu.name, cpu.default, cpu.max_time_min, [n.name for n in cpu.nodes]) == ("cpu", True, 60, ["c1"])
    assert (gpu.name, [n.name for n in gpu.nodes], gpu.nodes[0].gpus) == ("gpu", ["g1"], 2)
    v, o = preflight(LaunchOptions(root=ROOT, partition="gpu", gpus=2, cpus=9), timeout_s=10)
    assert v.problems == ("--cpus 9: at most 8 CPUs per task there",) and o.cpus == 9


@pytest.mark.parametrize("last_line", [
    "Unable to contact slurm controller (connect failure)", "error: Connection refused", "CONNECT FAILURE",
    "Socket timed out on send/recv operation", "Zero Bytes were transmitted or received"])
def test_an_unreachable_controller_raises(scontrol, last_line):
    scontrol(stderr=f"some warning\nanother\n{last_line}\n\n", rc=1)
    with pytest.raises(ControllerDown, match=f"^{re.escape(last_line)}$"):
        _scontrol("show", "partition", timeout_s=10)
    v, o = preflight(LaunchOptions(root=ROOT, partition="p"), timeout_s=10)
    assert v.down == last_line and v.checked and o.cpus is None and (v.partition, v.note) == ("p", "")


@pytest.mark.parametrize("stderr", ["", "\n\n", "Access/permission denied",
                                    "Unable to contact slurm controller\nbut this last line is another error"])
def test_any_other_scontrol_failure_skips_the_check(scontrol, stderr):
    scontrol(stderr=stderr, rc=1)
    assert _scontrol("show", "node", timeout_s=10) is None and read_partitions(timeout_s=10) is None
    v, o = preflight(LaunchOptions(root=ROOT, partition="p"), timeout_s=10)
    assert (v.partition, v.checked, v.note, v.refused, o.cpus) == ("p", False, "scontrol did not answer", False, 4)


def test_a_scontrol_that_answers_with_warnings_on_stderr_still_counts(scontrol):
    scontrol("PartitionName=p State=UP\n", "NodeName=n CPUTot=3 Partitions=p\n", stderr="connection refused", rc=0)
    (p,) = read_partitions(timeout_s=10)
    assert p.max_cpus == 3


def test_a_scontrol_that_hangs_is_given_up_saying_the_preflight_is_skipped(scontrol, tmp_path, capsys):
    (tmp_path / "bin" / "hang").touch()
    assert _scontrol("show", "partition", timeout_s=0.3) is None
    err = capsys.readouterr().err
    assert "`scontrol show partition -o` did not answer in 0 s: the preflight is skipped; " in err


@pytest.mark.parametrize("failing", ["partition", "node"])
def test_either_question_unanswered_skips_the_check(scontrol, tmp_path, failing):
    scontrol("PartitionName=p State=UP\n", "NodeName=n CPUTot=3 Partitions=p\n")
    (tmp_path / "bin" / f"fail-{failing}").touch()
    assert read_partitions(timeout_s=10) is None
