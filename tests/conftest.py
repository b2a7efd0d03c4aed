"""Test-wide isolation: every test session gets its own ARCHOPT_HOME.

Also the session's one run of the real main job (:func:`real_demo`), shared by
``tests/test_demo.py`` and the app test that uses the real default prior.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
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
