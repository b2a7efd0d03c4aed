"""Export a Pareto set: one Hugging Face ``config.json`` per architecture plus tables.

Layout of ``directory``::

    pareto.csv                     every metric and band, one row per architecture
    pareto.json                    the same rows plus the campaign they came from
    01-d2048-L16-h32/8x64-f8192/   (label with '/' replaced by '_')
        config.json                Arch.to_hf_config(): loads with transformers.AutoConfig

Rows are what :meth:`optim.campaign.Campaign.pareto` returns.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from models.arch import Arch
from models.errors import ArchoptError

__all__ = ["export_pareto", "ExportError", "config_dirname"]

_CONFIG_DIR = re.compile(r"^\d{2,}-d\d+-L\d+-h\d+_\d+x\d+-f\d+$")


class ExportError(ArchoptError):
    """The export directory cannot be written."""


def config_dirname(rank: int, arch: Arch) -> str:
    """``NN-<label>`` with path separators removed."""
    return f"{rank:02d}-{arch.label().replace('/', '_')}"


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def export_pareto(rows: Sequence[Mapping[str, Any]], directory: str | Path, *,
                  campaign: Mapping[str, Any] | None = None) -> list[Path]:
    """Write configs and tables for ``rows``; returns the written paths (configs first).

    Raises:
        ExportError: when ``directory`` exists as a file or cannot be created.
    """
    out = Path(directory).expanduser()
    if out.exists() and not out.is_dir():
        raise ExportError(f"export target {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create export directory {out}: {exc.strerror}") from None
    # A re-export replaces the previous one: stale config folders would look like members.
    for old in out.iterdir():
        if old.is_dir() and _CONFIG_DIR.match(old.name) and {p.name for p in old.iterdir()} <= {
                "config.json"}:
            shutil.rmtree(old)
    written: list[Path] = []
    table = []
    for rank, row in enumerate(rows, start=1):
        arch = Arch.from_mapping(row)
        sub = out / config_dirname(rank, arch)
        sub.mkdir(exist_ok=True)
        path = sub / "config.json"
        _write_atomic(path, json.dumps(arch.to_hf_config(), indent=2) + "\n")
        written.append(path)
        table.append({"rank": rank, **dict(row), "config": str(path.relative_to(out))})
    csv_path = out / "pareto.csv"
    _write_atomic(csv_path, pd.DataFrame(table).to_csv(index=False))
    json_path = out / "pareto.json"
    _write_atomic(json_path, json.dumps({"campaign": dict(campaign or {}), "pareto": table},
                                        indent=2) + "\n")
    return written + [csv_path, json_path]
