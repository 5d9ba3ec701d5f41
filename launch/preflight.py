"""Preflight: will the partition ever run what a launch asks for? Read before anything is submitted.

SLURM accepts a job that can never start (more GPUs, CPUs, memory or time than any node or the partition
allows, a partition that is down) and leaves it pending forever with reason `PartitionConfig` or
`ReqNodeNotAvail`. The preflight reads the partition with `scontrol show partition -o` and its nodes with
`scontrol show node -o` (each with a timeout) and refuses such a request at launch, in one line naming what
the partition offers and the flag to change. A scheduler that does not answer skips the check (it never
blocks a launch). The parsers take scontrol's literal text, so they are tested without a cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from launch.options import DEFAULT_CPUS, LaunchOptions, OptionsError
from launch.scheduler_call import run_scheduler

SCONTROL_TIMEOUT_S = 15.0
_FIELD_SPLIT = re.compile(r"\s+(?=[A-Za-z][\w/:.]*=)")  # values may hold spaces (OS=Linux 6.1 #1 SMP ...)
_GPU_GRES = re.compile(r"gpu(?::[^:,()]+)?:(\d+)")
_BAD_NODE_STATES = ("DOWN", "DRAIN", "FAIL", "INVAL", "FUTURE", "NOT_RESPONDING", "POWERED_DOWN")


class PreflightError(OptionsError):
    """A request the partition can never run; the message lists what it offers and the flag to change."""


def parse_fields(line: str) -> dict[str, str]:
    """One `scontrol show ... -o` record (`Key=Value Key=Value ...`) as a dict; spaces inside values stay."""
    out = {}
    for token in _FIELD_SPLIT.split(line.strip()):
        key, sep, value = token.partition("=")
        if sep:
            out[key] = value
    return out


def parse_minutes(text: str) -> int | None:
    """A SLURM time limit in minutes: `UNLIMITED`/`INFINITE` -> None; `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`,
    `D-H:M:S` as sbatch reads them (seconds round up)."""
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    d = int(days) if days else 0
    if days:  # D-H, D-H:M, D-H:M:S
        h, m, s = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        h, m, s = parts
    elif len(parts) == 2:
        h, m, s = 0, parts[0], parts[1]
    else:
        h, m, s = 0, parts[0], 0
    return d * 1440 + h * 60 + m + (1 if s else 0)


def _int_or_none(text: str | None) -> int | None:
    """scontrol's counts: a number, or None for UNLIMITED, (null), N/A and the like."""
    if text is None:
        return None
    digits = text.rstrip("M")
    return int(digits) if digits.isdigit() else None


@dataclass(frozen=True)
class Node:
    """One node as `scontrol show node -o` describes it."""

    name: str
    cpus: int
    memory_mb: int | None
    gpus: int
    state: str
    partitions: tuple[str, ...]

    @classmethod
    def parse(cls, line: str) -> Node:
        f = parse_fields(line)
        cpus = _int_or_none(f.get("CPUEfctv")) or _int_or_none(f.get("CPUTot")) or 0
        gres = f.get("Gres", "")
        return cls(name=f.get("NodeName", "?"), cpus=cpus, memory_mb=_int_or_none(f.get("RealMemory")),
                   gpus=sum(int(n) for n in _GPU_GRES.findall(gres)), state=f.get("State", ""),
                   partitions=tuple(p for p in f.get("Partitions", "").split(",") if p))

    @property
    def usable(self) -> bool:
        return not any(bad in self.state.upper() for bad in _BAD_NODE_STATES)


@dataclass(frozen=True)
class Partition:
    """One partition as `scontrol show partition -o` describes it, with its nodes."""

    name: str
    state: str
    default: bool
    max_time_min: int | None  # None = unlimited
    max_cpus_per_node: int | None
    max_mem_per_node_mb: int | None
    max_mem_per_cpu_mb: int | None
    nodes: tuple[Node, ...] = ()

    @classmethod
    def parse(cls, line: str) -> Partition:
        f = parse_fields(line)
        return cls(name=f.get("PartitionName", "?"), state=f.get("State", "?"), default=f.get("Default") == "YES",
                   max_time_min=parse_minutes(f.get("MaxTime", "UNLIMITED")),
                   max_cpus_per_node=_int_or_none(f.get("MaxCPUsPerNode")),
                   max_mem_per_node_mb=_int_or_none(f.get("MaxMemPerNode")),
                   max_mem_per_cpu_mb=_int_or_none(f.get("MaxMemPerCPU")))

    def with_nodes(self, nodes: list[Node]) -> Partition:
        return replace(self, nodes=tuple(n for n in nodes if self.name in n.partitions))

    @property
    def max_cpus(self) -> int:
        """The most CPUs one task can get here: the largest node, capped by MaxCPUsPerNode."""
        most = max((n.cpus for n in self.nodes), default=0)
        return min(most, self.max_cpus_per_node) if self.max_cpus_per_node else most

    def offers(self) -> str:
        """What the partition offers, in one phrase (largest node, GPUs, memory, MaxTime)."""
        mems = [n.memory_mb for n in self.nodes if n.memory_mb]
        mem = max(mems, default=0)
        if self.max_mem_per_node_mb:
            mem = min(mem, self.max_mem_per_node_mb) if mem else self.max_mem_per_node_mb
        gpus = max((n.gpus for n in self.nodes), default=0)
        time = "UNLIMITED" if self.max_time_min is None else f"{self.max_time_min} min"
        return (f"partition {self.name} ({self.state.lower()}, {len(self.nodes)} node(s)) offers up to "
                f"{self.max_cpus} CPUs, {mem / 1024:.3g} GB memory and {gpus} GPU(s) per node, MaxTime {time}")


@dataclass(frozen=True)
class Request:
    """What one task asks for: the resolved --gpus, --cpus, --mem and --time."""

    gpus: int
    cpus: int
    mem_gb: float | None
    time_min: int


@dataclass(frozen=True)
class Preflight:
    """The preflight's verdict: `checked` False when it was skipped (with the reason in `note`)."""

    partition: str | None
    checked: bool
    note: str
    problems: tuple[str, ...] = ()
    offers: str = ""
    partitions: dict[str, str] = field(default_factory=dict)  # other partitions -> their offer (for hints)
    down: str = ""  # scontrol's error when it ran and failed (the controller cannot be reached, ...)

    @property
    def refused(self) -> bool:
        return bool(self.problems or self.down)

    def message(self) -> str:
        """The one-line refusal: what does not fit, what the partition offers, how to go on anyway."""
        if self.down:
            return (f"SLURM does not answer here (scontrol: {self.down}): nothing was submitted; check "
                    "`scontrol ping` and the cluster's status, or pass --no-preflight to try sbatch anyway")
        return (f"--partition {self.partition}: this request can never run there: {'; '.join(self.problems)}. "
                f"{self.offers}. Change the flag(s) named, pick another --partition, or pass --no-preflight "
                "to submit anyway")

    def render(self) -> str:
        """The dry run's line."""
        if not self.checked:
            return f"preflight: skipped ({self.note})"
        if self.refused:
            return f"preflight: REFUSED, a launch would exit 2: {self.message()}"
        return f"preflight: ok; {self.offers}"


def check_request(partition: Partition, req: Request) -> list[str]:
    """Each way `req` can never run on `partition`, naming the flag to change; [] when it can."""
    problems = []
    if partition.state.upper() != "UP":
        problems.append(f"the partition is {partition.state} (not UP), so nothing starts there")
    if not partition.nodes:
        return problems + ["the partition has no nodes"]
    most_gpus = max(n.gpus for n in partition.nodes)
    if req.gpus > most_gpus:
        problems.append(f"--gpus {req.gpus}: its nodes have at most {most_gpus} GPU(s) (GRES)"
                        + (" (use --gpus 0 for a CPU partition)" if most_gpus == 0 else ""))
    if req.cpus > partition.max_cpus:
        problems.append(f"--cpus {req.cpus}: at most {partition.max_cpus} CPUs per task there")
    if req.mem_gb is not None:
        mb = req.mem_gb * 1024
        most_mb = max((n.memory_mb or 0) for n in partition.nodes)
        limits = [m for m in (most_mb, partition.max_mem_per_node_mb) if m]
        if partition.max_mem_per_cpu_mb:
            limits.append(partition.max_mem_per_cpu_mb * req.cpus)
        if limits and mb > min(limits):
            problems.append(f"--mem {req.mem_gb:g}: at most {min(limits) / 1024:.3g} GB per task there")
    if partition.max_time_min is not None and req.time_min > partition.max_time_min:
        problems.append(f"--time {req.time_min}: MaxTime is {partition.max_time_min} min")
    if not problems:
        fits = [n for n in partition.nodes if n.gpus >= req.gpus and n.cpus >= req.cpus
                and (req.mem_gb is None or not n.memory_mb or n.memory_mb >= req.mem_gb * 1024)]
        if not fits:
            problems.append(f"no single node has --gpus {req.gpus}, --cpus {req.cpus} and --mem "
                            f"{req.mem_gb if req.mem_gb is not None else 'default'} together")
        elif not any(n.usable for n in fits):  # SLURM would pend with ReqNodeNotAvail until one returns
            problems.append(f"every node that fits ({', '.join(f'{n.name} {n.state}' for n in fits[:4])}) is down, "
                            "drained or failing; ask an admin, or change the request to fit a node that is up")
    return problems


# what scontrol says when the controller cannot be reached (then sbatch fails the same way)
UNREACHABLE = re.compile(r"contact slurm controller|connection refused|connect failure|socket timed out|"
                         r"zero bytes were transmitted", re.I)


class ControllerDown(Exception):
    """scontrol is here but cannot reach the controller ("Unable to contact slurm controller", ...): sbatch would
    fail the same way."""


def _scontrol(*args: str, timeout_s: float) -> str | None:
    """stdout of `scontrol ARGS -o`, or None when scontrol is missing, cannot start or times out.

    Raises:
        ControllerDown: scontrol could not reach the controller; the message is its last stderr line. Any other
            failure (a site that hides partitions, ...) gives None: the check is skipped.
    """
    r = run_scheduler(["scontrol", *args, "-o"], timeout_s, "the preflight is skipped")
    if r is None:
        return None
    if r.returncode != 0:
        lines = [line.strip() for line in r.stderr.splitlines() if line.strip()]
        if lines and UNREACHABLE.search(lines[-1]):
            raise ControllerDown(lines[-1])
        return None  # another refusal (e.g. PrivateData): the check is skipped, sbatch may still work
    return r.stdout


def read_partitions(timeout_s: float = SCONTROL_TIMEOUT_S) -> list[Partition] | None:
    """Every partition with its nodes, from scontrol; None when scontrol is missing or does not answer in time.

    Raises:
        ControllerDown: scontrol cannot reach the controller.
    """
    parts_text = _scontrol("show", "partition", timeout_s=timeout_s)
    nodes_text = _scontrol("show", "node", timeout_s=timeout_s)
    if parts_text is None or nodes_text is None:
        return None
    nodes = [Node.parse(line) for line in nodes_text.splitlines() if line.startswith("NodeName=")]
    return [Partition.parse(line).with_nodes(nodes) for line in parts_text.splitlines()
            if line.startswith("PartitionName=")]


def judge(partitions: list[Partition], name: str | None, req: Request) -> Preflight:
    """The verdict on `req` for partition `name` (None = the cluster's default partition)."""
    known = {p.name: p for p in partitions}
    others = {p.name: p.offers() for p in partitions}
    if name is None:
        defaults = [p for p in partitions if p.default]
        if not defaults:
            return Preflight(None, False, "the cluster has no default partition; give --partition")
        name = defaults[0].name
    if name not in known:
        listing = ", ".join(sorted(known)) or "none"
        return Preflight(name, True, "", (f"no such partition (the cluster has: {listing})",),
                         offers="; ".join(others.values()) or "the cluster lists no partition", partitions=others)
    p = known[name]
    return Preflight(name, True, "", tuple(check_request(p, req)), offers=p.offers(), partitions=others)


def resolved_request(options: LaunchOptions, partition: Partition | None) -> Request:
    """The request with defaults filled: GPUs by platform (`LaunchOptions.gpu_count`), CPUs 4 (DEFAULT_CPUS)
    lowered to what the partition's largest node has when --cpus was not given."""
    cpus = options.cpus
    if cpus is None:
        cpus = DEFAULT_CPUS if partition is None or partition.max_cpus <= 0 else min(DEFAULT_CPUS, partition.max_cpus)
    return Request(options.gpu_count, cpus, options.mem_gb, options.time_min)


def preflight(options: LaunchOptions, *, partitions: list[Partition] | None = None,
              timeout_s: float = SCONTROL_TIMEOUT_S) -> tuple[Preflight, LaunchOptions]:
    """Check a SLURM launch against its partition; returns the verdict and the options with --cpus resolved.

    Skipped (checked False) for other executors, with `--no-preflight`, or when scontrol does not answer.
    `partitions` replaces the scontrol query (tests).
    """
    if options.executor != "slurm":
        return Preflight(options.partition, False, f"--executor {options.executor}"), options
    if not options.preflight:
        request = resolved_request(options, None)
        return Preflight(options.partition, False, "--no-preflight"), replace(options, cpus=request.cpus)
    if partitions is None:
        try:
            partitions = read_partitions(timeout_s)
        except ControllerDown as e:
            return Preflight(options.partition, True, "", down=str(e)), options
    if partitions is None:
        request = resolved_request(options, None)
        return (Preflight(options.partition, False, "scontrol did not answer"), replace(options, cpus=request.cpus))
    name = options.partition or next((p.name for p in partitions if p.default), None)
    part = next((p for p in partitions if p.name == name), None)
    request = resolved_request(options, part)
    return judge(partitions, options.partition, request), replace(options, cpus=request.cpus)


def require_fit(verdict: Preflight) -> None:
    """Raise PreflightError (exit 2, one line) for a request the partition can never run."""
    if verdict.refused:
        raise PreflightError(verdict.message())
