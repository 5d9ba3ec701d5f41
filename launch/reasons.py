"""Why a job is still pending (squeue's %r), and whether waiting will ever help.

Most reasons clear by themselves (Priority, Resources, a per-user or group QOS limit while other jobs run).
Some never do: the request is outside what the partition, QOS or association allows for one job, the job
is held, or its dependency can never be met. `status` marks those as stuck, with what to do. The names are
SLURM's (`man squeue`, JOB REASON CODES).
"""

from __future__ import annotations

from dataclasses import dataclass

RELAUNCH = "cancel (python -m launch cancel GRID) and relaunch with"


@dataclass(frozen=True)
class PendingReason:
    """One squeue reason: `stuck` when it will not resolve by itself, and a hint saying what to do."""

    reason: str
    stuck: bool
    hint: str = ""


_STUCK = {  # reason -> hint
    "PartitionConfig": f"the request exceeds what the partition allows (GPUs, CPUs, memory): {RELAUNCH} "
                       "fitting --gpus/--cpus/--mem or another --partition (the preflight checks this)",
    "PartitionTimeLimit": f"--time exceeds the partition's MaxTime: {RELAUNCH} a smaller --time",
    "PartitionNodeLimit": f"the request needs more nodes than the partition allows: {RELAUNCH} another --partition",
    "PartitionDown": "the partition is down: wait for the admins, or cancel and relaunch with another --partition",
    "PartitionInactive": "the partition is inactive: cancel and relaunch with another --partition",
    "ReqNodeNotAvail": "the nodes the job needs are down, drained or reserved: ask the admins or check "
                       f"`sinfo -R`; {RELAUNCH} another --partition or --sbatch exclude=NODE",
    "BadConstraints": f"no node has the requested features: {RELAUNCH} another --constraint",
    "InvalidAccount": f"the account is not valid here: {RELAUNCH} another --account",
    "InvalidQOS": f"the QOS is not valid here: {RELAUNCH} another --qos",
    "QOSNotAllowed": f"the QOS is not allowed on this partition: {RELAUNCH} another --qos or --partition",
    "AccountNotAllowed": f"the account may not use this partition: {RELAUNCH} another --account or --partition",
    "DependencyNeverSatisfied": "a dependency can never be met: cancel the job",
    "JobHeldUser": "held by a user: `scontrol release JOBID` lets it run",
    "JobHeldAdmin": "held by an administrator: ask them to release it",
    "launch_failed_requeued_held": "its launch failed and SLURM held it: check the node, then "
                                   "`scontrol release JOBID`",
}


def explain(reason: str) -> PendingReason:
    """Classify one squeue reason (unknown reasons are taken to clear by themselves).

    QOS and association limits that apply to one job (`...PerJob...`, MaxWallDuration) never clear;
    those on the user's or group's running jobs (`QOSMaxJobsPerUserLimit`, `AssocGrpGRES`, ...) clear when
    other jobs end.
    """
    if reason in _STUCK:
        return PendingReason(reason, True, _STUCK[reason])
    if reason.startswith(("QOS", "Assoc")) and ("PerJob" in reason or "MaxWallDuration" in reason):
        flag = "--time" if "WallDuration" in reason else "--gpus/--cpus/--mem"
        return PendingReason(reason, True, f"one job asks more than the QOS or association allows: {RELAUNCH} "
                                           f"a smaller {flag}, or another --qos")
    return PendingReason(reason, False)
