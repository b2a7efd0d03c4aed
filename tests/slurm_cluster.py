"""A throwaway single-node SLURM cluster for tests: its own munged, slurmctld and slurmd.

Debian's ``slurm-wlm`` and ``munge`` packages provide the daemons (``.ci/run`` installs them
under ``CI=true``). Everything lives in a temporary folder: the munge key and socket, the
cluster's ``slurm.conf`` (free localhost ports, the machine as its one node, no cgroups:
``proctrack/linuxproc`` and ``task/none``), state, spool and logs. The daemons run in the
foreground as children of the test process and are killed at the end. Clients (``sbatch``,
``squeue``, submitit) find the cluster through ``SLURM_CONF``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SlurmCluster", "start_slurm"]

_SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])


@dataclass
class SlurmCluster:
    """A running cluster: ``conf`` is its ``slurm.conf`` (export it as ``SLURM_CONF``)."""

    root: Path
    conf: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        """Kill the daemons (slurmd, slurmctld, munged) and remove the folder."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def _which(name: str) -> str:
    found = shutil.which(name, path=_SBIN)
    if found is None:
        raise RuntimeError(f"no {name} found (apt-get install slurm-wlm munge)")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-600:] if path.exists() else ""


def _wait(what: str, ready, proc: subprocess.Popen, log: Path, seconds: float = 60.0) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}: {_log_tail(log)}")
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {seconds:.0f} s: {_log_tail(log)}")


def start_slurm() -> SlurmCluster:
    """Start munged, slurmctld and slurmd, and wait until the node is idle.

    Raises:
        RuntimeError: a daemon is missing, exits or does not get ready (with its log's tail).
    """
    munged, mungekey = _which("munged"), _which("mungekey")
    slurmctld, slurmd, sinfo = _which("slurmctld"), _which("slurmd"), _which("sinfo")
    root = Path(tempfile.mkdtemp(prefix="archopt-slurm-"))
    cluster = SlurmCluster(root=root, conf=root / "slurm.conf")
    try:
        for sub in ("munge", "state", "spool", "log"):
            (root / sub).mkdir(mode=0o700)
        key = root / "munge" / "munge.key"
        subprocess.run([mungekey, "--create", f"--keyfile={key}"], check=True, capture_output=True)
        key.chmod(0o400)
        sock = root / "munge" / "munge.socket"
        munge_log = root / "log" / "munged.log"
        cluster.procs.append(
            subprocess.Popen(
                [
                    munged,
                    "--foreground",
                    "--force",
                    f"--socket={sock}",
                    f"--key-file={key}",
                    f"--pid-file={root / 'munge' / 'munged.pid'}",
                    f"--log-file={munge_log}",
                    f"--seed-file={root / 'munge' / 'munged.seed'}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait("munged", sock.exists, cluster.procs[-1], munge_log)

        host = socket.gethostname().split(".")[0]
        cpus = os.cpu_count() or 1
        memory_mb = max(
            int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20) - 1024, 512
        )
        user = "root" if os.geteuid() == 0 else os.environ.get("USER", "root")
        cluster.conf.write_text(
            "\n".join(
                [
                    "ClusterName=archopt-test",
                    f"SlurmctldHost={host}(127.0.0.1)",
                    f"SlurmUser={user}",
                    f"SlurmdUser={user}",
                    "AuthType=auth/munge",
                    f"AuthInfo=socket={sock}",
                    f"StateSaveLocation={root / 'state'}",
                    f"SlurmdSpoolDir={root / 'spool'}",
                    f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                    f"SlurmdPidFile={root / 'slurmd.pid'}",
                    f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "SchedulerType=sched/builtin",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "ReturnToService=2",
                    "MpiDefault=none",
                    f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} "
                    f"RealMemory={memory_mb} State=UNKNOWN",
                    f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        env = {**os.environ, "SLURM_CONF": str(cluster.conf)}
        for daemon, log in (
            (slurmctld, root / "log" / "slurmctld.log"),
            (slurmd, root / "log" / "slurmd.log"),
        ):
            cluster.procs.append(
                subprocess.Popen(
                    [daemon, "-D", "-f", str(cluster.conf)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            time.sleep(0.5)

        def idle() -> bool:
            out = subprocess.run(
                [sinfo, "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=30
            )
            return out.returncode == 0 and out.stdout.strip().startswith("idle")

        _wait("slurmd", idle, cluster.procs[-1], root / "log" / "slurmd.log")
    except BaseException:
        cluster.stop()
        raise
    return cluster
