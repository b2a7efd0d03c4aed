"""Export a Pareto set: one Hugging Face ``config.json`` per architecture plus tables.

Layout of ``directory``::

    pareto.csv                     every metric and band, one row per architecture
    pareto.json                    the same rows plus the campaign they came from
    01-d2048-L16-h32/8x64-f8192/   (label with '/' replaced by '_')
        config.json                Arch.to_hf_config(): loads with transformers.AutoConfig

Rows are what :meth:`optim.campaign.Campaign.pareto` returns.

Safety: nothing is ever written through a symbolic link inside ``directory``. A config folder
name that is a link (to anywhere) is refused before anything is written; files are written to
a temporary name and renamed, so a link at ``pareto.csv`` or ``config.json`` is replaced, not
followed. A folder that cannot be written is refused up front, with one line.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from models.arch import Arch
from models.errors import ArchoptError
from models.files import write_atomic

__all__ = ["export_pareto", "ExportError", "config_dirname"]

_CONFIG_DIR = re.compile(r"^\d{2,}-d\d+-L\d+-h\d+_\d+x\d+-f\d+$")


class ExportError(ArchoptError):
    """The export directory cannot be written."""


def config_dirname(rank: int, arch: Arch) -> str:
    """``NN-<label>`` with path separators removed."""
    return f"{rank:02d}-{arch.label().replace('/', '_')}"


def _prepare(out: Path, names: Sequence[str]) -> None:
    """Create ``out`` and check it can be written and holds no linked config folder.

    Raises:
        ExportError: ``out`` is a file, cannot be created or written, or a config folder name
            in it (one of ``names`` or a stale one) is a symbolic link.
    """
    if out.exists() and not out.is_dir():
        raise ExportError(f"export target {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".archopt-write-probe-"):
            pass
    except OSError as exc:
        raise ExportError(f"cannot write to export folder {out}: {exc.strerror or exc}") from None
    wanted = set(names)
    for entry in out.iterdir():
        if entry.is_symlink() and (entry.name in wanted or _CONFIG_DIR.match(entry.name)):
            raise ExportError(
                f"{entry} is a symbolic link; archopt never writes through links "
                f"in an export folder (remove the link or export elsewhere)"
            )


def export_pareto(
    rows: Sequence[Mapping[str, Any]],
    directory: str | Path,
    *,
    campaign: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write configs and tables for ``rows``; returns the written paths (configs first).

    Raises:
        ExportError: ``directory`` is a file, cannot be created or written, or holds a
            symbolic link where a config folder goes (nothing is written then); or a write
            fails midway (one line).
    """
    out = Path(directory).expanduser()
    archs = [Arch.from_mapping(row) for row in rows]
    names = [config_dirname(rank, arch) for rank, arch in enumerate(archs, start=1)]
    _prepare(out, names)
    try:
        return _write_all(out, rows, archs, names, campaign)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise ExportError(f"export to {out} failed at{where}: {exc.strerror or exc}") from None


def _write_all(
    out: Path,
    rows: Sequence[Mapping[str, Any]],
    archs: Sequence[Arch],
    names: Sequence[str],
    campaign: Mapping[str, Any] | None,
) -> list[Path]:
    # A re-export replaces the previous one: stale config folders would look like members.
    for old in out.iterdir():
        if (
            not old.is_symlink()
            and old.is_dir()
            and _CONFIG_DIR.match(old.name)
            and {p.name for p in old.iterdir()} <= {"config.json"}
        ):
            shutil.rmtree(old)
    written: list[Path] = []
    table = []
    for rank, (row, arch, name) in enumerate(zip(rows, archs, names), start=1):
        sub = out / name
        sub.mkdir(exist_ok=True)
        path = sub / "config.json"
        write_atomic(path, json.dumps(arch.to_hf_config(), indent=2) + "\n")
        written.append(path)
        table.append({"rank": rank, **dict(row), "config": str(path.relative_to(out))})
    csv_path = out / "pareto.csv"
    write_atomic(csv_path, pd.DataFrame(table).to_csv(index=False))
    json_path = out / "pareto.json"
    write_atomic(
        json_path, json.dumps({"campaign": dict(campaign or {}), "pareto": table}, indent=2) + "\n"
    )
    return written + [csv_path, json_path]
