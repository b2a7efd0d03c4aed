"""How the model commands print: one JSON document (non-finite numbers as null) or a
two-column rich table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

__all__ = ["print_json", "finite_or_null", "json_default", "print_fields"]


def print_json(obj: Any) -> None:
    """One JSON document; non-finite numbers (a quantity that does not apply) become null."""
    typer.echo(json.dumps(finite_or_null(obj), indent=2, default=json_default, allow_nan=False))


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every non-finite float (nested in dicts, lists, tuples) replaced by None."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def json_default(obj: Any) -> Any:
    """``json.dumps`` default for numpy scalars and paths."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def print_fields(title: str, rows: list[tuple[str, Any]]) -> None:
    """A rich table of ``(field, value)`` rows titled ``title`` (numbers formatted)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in rows:
        if isinstance(value, float):
            text = f"{value:.6g}"
        elif isinstance(value, int) and not isinstance(value, bool):
            text = f"{value:,}"
        else:
            text = str(value)
        table.add_row(key, text)
    Console().print(table)
