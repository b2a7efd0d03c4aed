"""Test-wide isolation: every test session gets its own ARCHOPT_HOME.

Also the session's one run of the real main job (:func:`real_demo`), shared by
``tests/test_demo.py`` and the app test that uses the real default prior.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="archopt-test-home-")
os.environ["ARCHOPT_HOME"] = _HOME

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "surrogate" / "data"


@pytest.fixture
def archopt_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty ARCHOPT_HOME for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("ARCHOPT_HOME", str(home))
    return home


@dataclass(frozen=True)
class DemoRun:
    """One ``archopt demo`` run: where it ran and what it printed.

    Attributes:
        home: its ``ARCHOPT_HOME`` (the fitted default prior and the demo campaign's store).
        cwd: the folder it ran in; the export is ``cwd / "archopt-demo"``.
        returncode, stdout, stderr: of the process.
        seconds: wall time of the run (prior fit included).
    """

    home: Path
    cwd: Path
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def export(self) -> Path:
        return self.cwd / "archopt-demo"


def archopt_executable() -> str:
    """The installed ``archopt`` console script (beside this interpreter, else on PATH)."""
    beside = Path(sys.executable).with_name("archopt")
    found = str(beside) if beside.is_file() else shutil.which("archopt")
    if not found:
        pytest.fail("the archopt console script is not installed (pip install -e .)")
    return found


@pytest.fixture(scope="session")
def real_demo(tmp_path_factory) -> DemoRun:
    """``archopt demo`` exactly as a user runs it, once per session.

    The installed console script in a subprocess, in an empty folder, with an empty
    ``ARCHOPT_HOME`` of its own: the real default prior is fitted there (NUTS on the bundled
    runs, about 20-40 s on 2 cores) and cached, then the demo campaign is created, proposes and
    exports. Nothing is faked.
    """
    root = tmp_path_factory.mktemp("real-demo")
    home, cwd = root / "home", root / "work"
    cwd.mkdir()
    env = {**os.environ, "ARCHOPT_HOME": str(home), "COLUMNS": "200"}
    start = time.perf_counter()
    proc = subprocess.run(
        [archopt_executable(), "demo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return DemoRun(
        home=home,
        cwd=cwd,
        returncode=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        seconds=time.perf_counter() - start,
    )


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder no one can create files in: mode 0555, plus ``chattr +i`` when running as root
    (root ignores mode bits). Skips only where neither is possible."""
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "present.txt").write_text("here")
    folder.chmod(0o555)
    immutable = False
    if _can_create_in(folder) and shutil.which("chattr"):
        immutable = (
            subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
        )
    if _can_create_in(folder):
        folder.chmod(0o755)
        pytest.skip("cannot make a read-only folder here (root without chattr)")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def _can_create_in(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


# ---- a throwaway PostgreSQL server (team campaign stores) ---------------------------------------
@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL cluster this test session started (Debian's ``postgresql`` package:
    ``initdb`` + ``pg_ctl``) on a free localhost port, trust authentication for user
    ``archopt``; :meth:`new_database` makes an empty database and returns its URL."""

    bindir: Path
    datadir: Path
    port: int
    run_as: tuple[str, ...]

    def client(self, program: str, *args: str) -> subprocess.CompletedProcess:
        """Run a PostgreSQL client program (``psql``, ``createdb``...) against the server."""
        return subprocess.run(
            [
                str(self.bindir / program),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "archopt",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def new_database(self) -> str:
        """A fresh empty database: its ``postgresql://`` URL."""
        name = f"t{uuid.uuid4().hex[:12]}"
        proc = self.client("createdb", name)
        if proc.returncode != 0:
            pytest.fail(f"createdb {name} failed: {proc.stderr.strip()}")
        return f"postgresql://archopt@127.0.0.1:{self.port}/{name}"


def service_unavailable(what: str, reason: str) -> None:
    """A service a test needs cannot be had: fail under ``CI=true`` (CI installs and must run
    it), skip elsewhere; the reason is shown either way."""
    message = f"{what} is unavailable: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: this must not be skipped)", pytrace=False)
    pytest.skip(message)


def _postgres_bindir() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_postgres() -> PostgresServer:
    """Start a cluster or raise RuntimeError with the reason."""
    bindir = _postgres_bindir()
    if bindir is None:
        raise RuntimeError("no initdb found (apt-get install postgresql)")
    run_as: tuple[str, ...] = ()
    root = Path(tempfile.mkdtemp(prefix="archopt-pg-"))
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no 'postgres' user") from None
        # runuser lives in /usr/sbin or /sbin, which a minimal PATH (env -i) leaves out
        search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        runuser = shutil.which("runuser", path=search)
        if runuser is None:
            raise RuntimeError("running as root and there is no runuser to drop to 'postgres'")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        run_as = (runuser, "-u", "postgres", "--")
    datadir = root / "data"

    def run(*cmd: str) -> None:
        proc = subprocess.run([*run_as, *cmd], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = root / "server.log"
            tail = log.read_text()[-800:] if log.exists() else ""
            raise RuntimeError(
                f"{Path(cmd[0]).name} exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-800:]} {tail}"
            )

    run(
        str(bindir / "initdb"),
        "-D",
        str(datadir),
        "-U",
        "archopt",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
    )
    for _ in range(5):  # a port taken between the probe and the start: try another
        port = _free_port()
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        try:
            run(
                str(bindir / "pg_ctl"),
                "-D",
                str(datadir),
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            )
        except RuntimeError as exc:
            if "already in use" not in str(exc):
                raise
            continue
        return PostgresServer(bindir, datadir, port, run_as)
    raise RuntimeError("no free port for PostgreSQL after 5 tries")


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """A throwaway PostgreSQL server for the session (stopped and deleted afterwards). When it
    cannot be started: skipped with the reason, or failed under ``CI=true``."""
    try:
        server = _start_postgres()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        service_unavailable("PostgreSQL", str(exc))
    yield server
    subprocess.run(
        [
            *server.run_as,
            str(server.bindir / "pg_ctl"),
            "-D",
            str(server.datadir),
            "-m",
            "immediate",
            "-w",
            "stop",
        ],
        capture_output=True,
        timeout=60,
    )
    shutil.rmtree(server.datadir.parent, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh database on :func:`postgres_server`; needs a PostgreSQL driver
    (psycopg or psycopg2) in this Python, else skipped (failed under ``CI=true``)."""
    import importlib.util

    if not any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")):
        service_unavailable(
            "PostgreSQL from Python", "no driver installed (pip install 'psycopg[binary]')"
        )
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def slurm_cluster():
    """A throwaway single-node SLURM cluster for the session (``tests/slurm_cluster.py``). When it
    cannot be started: skipped with the reason, or failed under ``CI=true``."""
    from slurm_cluster import start_slurm

    try:
        cluster = start_slurm()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        service_unavailable("SLURM", str(exc))
    yield cluster
    cluster.stop()


@pytest.fixture
def slurm_conf(slurm_cluster, monkeypatch) -> Path:
    """``SLURM_CONF`` pointing at :func:`slurm_cluster` for this test (sbatch, squeue, submitit)."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    return slurm_cluster.conf
