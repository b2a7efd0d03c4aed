"""Run tables: reading, validating and the bundled real data.

A run table has one row per training run with the shared columns of ``surrogate/data``:
``source, run``, the eight shape fields of :class:`~models.arch.Arch`, ``params`` (total
parameters), ``tokens`` (training tokens), ``loss`` and ``loss_kind``. Extra columns are kept.
Validation happens here, at the boundary, and every error names the file, the line (or row)
and the column.

Limits: a run table file is at most :data:`RUN_TABLE_MAX_BYTES` (64 MiB, about half a million
runs; real tables are kilobytes), is UTF-8, and every loss is finite and inside
:data:`PLAUSIBLE_LOSS_RANGE` (``0 < loss < 20`` nats/token) unless the caller passes
``loss_range=None``. :func:`check_loss` is the one check of a single loss (``observe --loss``
uses it too).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from models.arch import SHAPE_FIELDS, Arch, ArchError
from models.errors import ArchoptError
from models.files import read_text

__all__ = [
    "RunTableError",
    "LossError",
    "PLAUSIBLE_LOSS_RANGE",
    "parse_runs",
    "RUN_TABLE_MAX_BYTES",
    "check_loss",
    "RUN_COLUMNS",
    "BUNDLED_RUN_TABLES",
    "load_runs",
    "validate_runs",
    "bundled_path",
    "bundled_runs",
    "reference_architectures",
    "table_archs",
    "source_keys",
]

#: The shared columns, in file order.
RUN_COLUMNS: tuple[str, ...] = (
    "source",
    "run",
    *SHAPE_FIELDS,
    "params",
    "tokens",
    "loss",
    "loss_kind",
)
#: The four bundled run tables (real training runs; provenance in surrogate/data/README.md).
BUNDLED_RUN_TABLES: tuple[str, ...] = (
    "morph_runs.csv",
    "openlm_grid.csv",
    "openlm_runs.csv",
    "gemstones_runs.csv",
)
_DATA_DIR = Path(__file__).resolve().parent / "data"

#: Open interval a training loss must lie in: per-token cross-entropy in nats. A uniform guess
#: over a 256k-token vocabulary is ln(256000) = 12.5 nats, so an untrained model is far inside
#: and any real run is too; 20 nats is a uniform guess over 5e8 tokens. Losses outside are unit
#: slips (perplexity, bits, a sum over tokens) or typos that would poison every later prediction.
PLAUSIBLE_LOSS_RANGE: tuple[float, float] = (0.0, 20.0)

#: Largest run table file read (64 MiB, about half a million rows).
RUN_TABLE_MAX_BYTES = 64 << 20


class RunTableError(ArchoptError):
    """A run table is missing columns or holds an invalid value (message names row/column)."""


class LossError(ArchoptError):
    """A loss that is not a finite number, or (unless forced) outside the plausible range."""


def check_loss(
    value: object,
    *,
    where: str = "loss",
    loss_range: tuple[float, float] | None = PLAUSIBLE_LOSS_RANGE,
) -> float:
    """``value`` as a float, if it is a finite positive number within ``loss_range``.

    Args:
        value: the loss (nats/token).
        where: what to call it in the message (``"observe 3: --loss"``).
        loss_range: open interval it must lie in; ``None`` only requires finite and positive
            (the ``--force`` path).

    Raises:
        LossError: one line naming ``where``, the value and the range.
    """
    if isinstance(value, (bool, np.bool_)) or not _is_number(value):
        raise LossError(f"{where}: must be a finite positive number, got {value!r}")
    loss = float(value)  # type: ignore[arg-type]
    if not math.isfinite(loss) or loss <= 0:
        raise LossError(f"{where}: must be a finite positive number, got {value!r}")
    if loss_range is not None and not loss_range[0] < loss < loss_range[1]:
        low, high = loss_range
        raise LossError(
            f"{where}: {loss:g} is outside the plausible range {low:g} < loss < "
            f"{high:g} (per-token cross-entropy in nats)"
        )
    return loss


def _where(name: str, index: object, position: int, from_file: bool, run: object) -> str:
    # Files report the 1-based line (header = line 1); frames report the index label.
    loc = f"line {position + 2}" if from_file else f"row {index!r}"
    if isinstance(run, str) and run:
        loc += f" (run {run!r})"
    return f"{name}: {loc}"


def validate_runs(
    df: pd.DataFrame,
    *,
    require_loss: bool = True,
    require_tokens: bool = True,
    name: str = "table",
    loss_range: tuple[float, float] | None = PLAUSIBLE_LOSS_RANGE,
    _from_file: bool = False,
) -> pd.DataFrame:
    """Check a run table and return a typed copy.

    Args:
        df: the table (``n`` rows).
        require_loss: ``loss`` (and ``loss_kind``) must be present; when False (prediction) they
            are optional but still checked when present. ``source`` is optional then too.
        require_tokens: ``tokens`` must be present (False when the caller supplies tokens).
        name: what to call the table in errors (a file name).
        loss_range: every loss must lie in this open interval (:func:`check_loss`); ``None``
            only requires finite positive losses.

    Returns:
        A copy with integer shape fields, boolean ``tie_embeddings``, int64 ``params`` and
        float64 ``tokens`` / ``loss``; other columns unchanged.

    Raises:
        RunTableError: naming the table, the row and the column of the first problem.
    """
    if not isinstance(df, pd.DataFrame):
        raise RunTableError(f"{name}: expected a table, got {type(df).__name__}")
    required = ["run", *SHAPE_FIELDS]
    if require_loss:
        required = ["source", *required, "loss", "loss_kind"]
    if require_tokens:
        required.append("tokens")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise RunTableError(f"{name}: missing column(s) {', '.join(missing)}")
    if len(df) == 0:
        raise RunTableError(f"{name}: no rows")
    out = df.copy()
    runs = out["run"].tolist()
    shapes: dict[str, list] = {f: [] for f in SHAPE_FIELDS}
    for i, (index, row) in enumerate(zip(out.index, out.to_dict("records"))):
        where = _where(name, index, i, _from_file, runs[i])
        for col in ("source", "run", "loss_kind"):
            if col in out.columns:
                value = row[col]
                if not isinstance(value, str) or not value.strip():
                    raise RunTableError(
                        f"{where}, column {col!r}: must be a non-empty string, got {value!r}"
                    )
        try:
            arch = Arch.from_mapping(row)
        except ArchError as exc:
            column = next((f for f in SHAPE_FIELDS if f in str(exc)), "shape")
            raise RunTableError(f"{where}, column {column!r}: {exc}") from None
        if "params" in out.columns:
            value = row["params"]
            if _exact_int(value) != arch.params:
                raise RunTableError(
                    f"{where}, column 'params': {value!r} does not match "
                    f"{arch.params} computed from the shape"
                )
        if "tokens" in out.columns:
            value = row["tokens"]
            if (
                isinstance(value, (bool, np.bool_))
                or not _is_number(value)
                or not math.isfinite(float(value))
                or float(value) <= 0
            ):
                raise RunTableError(
                    f"{where}, column 'tokens': must be a finite positive number, got {value!r}"
                )
        if "loss" in out.columns:
            try:
                check_loss(row["loss"], where=f"{where}, column 'loss'", loss_range=loss_range)
            except LossError as exc:
                raise RunTableError(str(exc)) from None
        for f in SHAPE_FIELDS:  # the types Arch normalised (e.g. "True", 512.0)
            shapes[f].append(getattr(arch, f))
    for f in SHAPE_FIELDS:
        out[f] = np.asarray(shapes[f], dtype=bool if f == "tie_embeddings" else np.int64)
    if "params" in out.columns:
        out["params"] = out["params"].astype("int64")
    for col in ("tokens", "loss"):
        if col in out.columns:
            out[col] = out[col].astype("float64")
    return out


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _exact_int(value: object) -> int | None:
    """``value`` as an exact integer (ints and integral strings/floats), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        pass
    try:
        as_float = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return int(as_float) if math.isfinite(as_float) and as_float.is_integer() else None


def load_runs(
    *paths: str | Path,
    require_loss: bool = True,
    require_tokens: bool = True,
    loss_range: tuple[float, float] | None = PLAUSIBLE_LOSS_RANGE,
) -> pd.DataFrame:
    """Read and validate one or more run CSVs and concatenate them (index 0..n-1).

    Each file is read whole through :func:`models.files.read_text` (at most
    :data:`RUN_TABLE_MAX_BYTES`, strict UTF-8) before parsing; ``loss_range`` as in
    :func:`validate_runs`.

    Raises:
        RunTableError: unreadable, too large or binary file, missing column, or invalid value
            (file, line, column).
    """
    if not paths:
        raise RunTableError("no run table given")
    frames = []
    for path in paths:
        text = read_text(
            Path(path), max_bytes=RUN_TABLE_MAX_BYTES, what="run table", error=RunTableError
        )
        frames.append(
            parse_runs(
                text,
                name=str(path),
                require_loss=require_loss,
                require_tokens=require_tokens,
                loss_range=loss_range,
            )
        )
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def parse_runs(
    data: str | bytes,
    *,
    name: str,
    require_loss: bool = True,
    require_tokens: bool = True,
    loss_range: tuple[float, float] | None = PLAUSIBLE_LOSS_RANGE,
) -> pd.DataFrame:
    """Parse and validate the text of one run-table CSV (e.g. an upload) named ``name``.

    ``bytes`` must be UTF-8 and at most :data:`RUN_TABLE_MAX_BYTES`; messages name ``name``,
    the line and the column as :func:`load_runs` does.

    Raises:
        RunTableError: too large, binary, not a CSV, or an invalid value.
    """
    if isinstance(data, bytes):
        if len(data) > RUN_TABLE_MAX_BYTES:
            raise RunTableError(
                f"run table {name} is larger than "
                f"{RUN_TABLE_MAX_BYTES // (1 << 20)} MiB; refusing to read it"
            )
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RunTableError(
                f"run table {name} is not UTF-8 text (invalid byte at offset "
                f"{exc.start}; a binary file?)"
            ) from None
    try:
        raw = pd.read_csv(io.StringIO(data))
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RunTableError(f"cannot read run table {name}: {' '.join(str(exc).split())}") from None
    return validate_runs(
        raw,
        require_loss=require_loss,
        require_tokens=require_tokens,
        name=name,
        loss_range=loss_range,
        _from_file=True,
    )


def bundled_path(filename: str) -> Path:
    """Path of a file in ``surrogate/data`` (the bundled real data)."""
    path = _DATA_DIR / filename
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in _DATA_DIR.glob("*.csv")))
        raise RunTableError(f"no bundled file {filename!r}; bundled: {known}")
    return path


def bundled_runs() -> pd.DataFrame:
    """All four bundled run tables, validated and concatenated (738 rows)."""
    return load_runs(*(bundled_path(f) for f in BUNDLED_RUN_TABLES))


def reference_architectures() -> pd.DataFrame:
    """Real model configs (Llama 3.x; arXiv 2510.18245 Table 1 models with reported losses).

    Columns: ``name``, the shape fields, ``params``, ``reported_loss`` and ``tokens`` (NaN when
    not reported), ``source`` (provenance text). Shapes and params are validated.
    """
    path = bundled_path("reference_architectures.csv")
    df = pd.read_csv(path)
    checked = validate_runs(
        df.rename(columns={"name": "run"}).drop(columns=["source", "tokens"]),
        require_loss=False,
        require_tokens=False,
        name=str(path),
        _from_file=True,
    )
    for f in SHAPE_FIELDS:
        df[f] = checked[f].to_numpy()
    return df


def table_archs(df: pd.DataFrame) -> list[Arch]:
    """The :class:`Arch` of every row of a validated table, in row order."""
    cols = [df[f].tolist() for f in SHAPE_FIELDS]
    return [Arch(*values) for values in zip(*cols)]


def source_keys(df: pd.DataFrame) -> np.ndarray:
    """The key that per-source terms are attached to, one per row.

    It is the ``source`` column, refined by ``dataset`` when the table has one (rows of one
    repository trained on different datasets have different losses, e.g. openlm_runs.csv).
    Rows without a source get ``""``.
    """
    if "source" not in df.columns:
        return np.full(len(df), "", dtype=object)
    keys = df["source"].astype(str).to_numpy(dtype=object)
    if "dataset" in df.columns:
        ds = df["dataset"]
        keys = np.array(
            [k if pd.isna(d) or d == "" else f"{k}/{d}" for k, d in zip(keys, ds)], dtype=object
        )
    return keys
