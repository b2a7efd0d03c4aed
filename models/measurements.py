"""Measured runs and where they are kept: :class:`Measurement` and the SQLite
:class:`MeasurementCache` (default ``$ARCHOPT_HOME/measurements.sqlite``).

Harness runs (:func:`models.measure.measure`) and imported vLLM benchmark results
(:mod:`models.vllm_results`) are both :class:`Measurement`\\ s; ``origin`` says which.
"""

from __future__ import annotations

import importlib.metadata
import json
import sqlite3
import statistics
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from .arch import Arch
from .errors import ArchoptError
from .home import HOME_HINT, archopt_home, ensure_writable_folder
from .throughput import ThroughputPrediction, TimingRecord, Workload
from .workload import GPU_MEMORY_UTILIZATION

__all__ = [
    "Measurement",
    "MeasurementCache",
    "MeasurementCacheError",
    "default_cache_path",
    "library_versions",
    "MEASUREMENT_DB",
]

#: File name of the cache under ``$ARCHOPT_HOME``.
MEASUREMENT_DB = "measurements.sqlite"


def default_cache_path() -> Path:
    """``$ARCHOPT_HOME/measurements.sqlite`` (nothing is created)."""
    return archopt_home(create=False) / MEASUREMENT_DB


def library_versions(backend: str) -> dict[str, str]:
    """Versions that change timings: torch and transformers, plus vllm for the vllm backend.

    Read from package metadata (nothing is imported). A missing package reads ``"absent"``.
    """
    names = ("torch", "transformers") + (("vllm",) if backend == "vllm" else ())
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


@dataclass(frozen=True)
class Measurement:
    """One measured generation run (median over repeats) or a recorded failure.

    Args:
        status: ``"ok"`` or ``"failed"``.
        reason: why it failed (empty when ok).
        arch, hardware_id, backend: what ran where.
        batch_size, input_len, output_len, dtype: the workload.
        tokens_per_s: median generated tokens per second for the whole batch
            (``batch_size * output_len / total``).
        tokens_per_s_spread: max minus min tokens/s over the repeats.
        ttft_s: median time to first token (prefill).
        decode_s_per_token: median ``(total - ttft) / (output_len - 1)`` (0 if output_len 1).
        total_s: median wall time of one ``generate`` call.
        peak_mem_bytes: hf: CUDA peak allocated memory, or on CPU the process peak RSS; vllm: the
            engine's device memory per GPU (NVML, see the module docstring); imported: none.
        repeats: timed repetitions.
        device: device name (``"cpu"`` or the CUDA device name).
        versions: library versions (part of the cache key).
        created_at: Unix time of the measurement.
        times_s: total seconds of every repeat.
        cpu_times_s, cpu_ttft_s: the same in process CPU seconds (hf backend). For a
            single-threaded CPU run this equals wall time on an idle machine and, unlike wall
            time, does not grow when other processes share the cores.
        num_requests, tp, gpu_memory_utilization, max_batched_tokens: the rest of the workload
            (:class:`~models.workload.Workload`).
        origin: ``"harness"`` (run by :func:`measure`), ``"vllm bench throughput"`` or ``"vllm
            bench serve"`` (imported from that tool's JSON).
        source_file: the imported file.
        request_throughput: requests/s of the run.
        prefill_s: vllm harness: wall time of a prefill-only run (one output token each).
        peak_mem_source: how ``peak_mem_bytes`` was obtained.
    """

    status: str
    reason: str
    arch: Arch
    hardware_id: str
    backend: str
    batch_size: int
    input_len: int
    output_len: int
    dtype: str
    tokens_per_s: float | None = None
    tokens_per_s_spread: float | None = None
    ttft_s: float | None = None
    decode_s_per_token: float | None = None
    total_s: float | None = None
    peak_mem_bytes: float | None = None
    repeats: int = 0
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    times_s: tuple[float, ...] = ()
    cpu_times_s: tuple[float, ...] = ()
    cpu_ttft_s: float | None = None
    num_requests: int | None = None
    tp: int = 1
    gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION
    max_batched_tokens: int | None = None
    origin: str = "harness"
    source_file: str = ""
    request_throughput: float | None = None
    prefill_s: float | None = None
    peak_mem_source: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def workload(self) -> Workload:
        return Workload(
            self.batch_size,
            self.input_len,
            self.output_len,
            self.dtype,
            self.backend,
            num_requests=self.num_requests,
            tp=self.tp,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_batched_tokens=self.max_batched_tokens,
        )

    @staticmethod
    def workload_fields(workload: Workload) -> dict[str, Any]:
        """The constructor fields that record ``workload`` (the inverse of :attr:`workload`)."""
        return dict(
            backend=workload.backend,
            batch_size=workload.batch_size,
            input_len=workload.input_len,
            output_len=workload.output_len,
            dtype=workload.dtype,
            num_requests=workload.num_requests,
            tp=workload.tp,
            gpu_memory_utilization=workload.gpu_memory_utilization,
            max_batched_tokens=workload.max_batched_tokens,
        )

    def to_timing_record(self, clock: str = "wall") -> TimingRecord | None:
        """For :func:`models.throughput.calibrate`; None for a failed measurement.

        ``clock="cpu"`` uses the median process CPU times instead of wall times.
        """
        if not self.ok or self.total_s is None:
            return None
        if clock == "cpu":
            if not self.cpu_times_s or self.cpu_ttft_s is None:
                return None
            return TimingRecord(
                self.arch, self.workload, statistics.median(self.cpu_times_s), self.cpu_ttft_s
            )
        if clock != "wall":
            raise ArchoptError(f"clock must be 'wall' or 'cpu', got {clock!r}")
        if self.origin == "vllm bench serve":
            return TimingRecord(
                self.arch,
                self.workload,
                self.total_s,
                self.ttft_s,
                self.decode_s_per_token if self.output_len > 1 else None,
            )
        # The vllm harness and `vllm bench throughput` give no per-request time to first token.
        ttft = self.ttft_s if self.backend == "hf" and self.origin == "harness" else None
        return TimingRecord(self.arch, self.workload, self.total_s, ttft)

    def to_prediction(self) -> ThroughputPrediction:
        """The measurement as a prediction with ``source="measured"`` (ok measurements only)."""
        if not self.ok:
            raise ArchoptError(f"measurement failed: {self.reason}")
        if self.tokens_per_s is None or self.total_s is None:
            raise ArchoptError("an ok measurement needs tokens_per_s and total_s")
        nan = float("nan")
        tps = float(self.tokens_per_s)
        spread = float(self.tokens_per_s_spread or 0.0)
        return ThroughputPrediction(
            tokens_per_s=tps,
            ttft_s=nan if self.ttft_s is None else float(self.ttft_s),
            decode_s_per_token=nan
            if self.decode_s_per_token is None
            else float(self.decode_s_per_token),
            total_s=float(self.total_s),
            memory_bytes=float(self.peak_mem_bytes or nan),
            fits_in_memory=True,
            source="measured",
            rel_sigma=0.5 * spread / tps,
            request_throughput=(
                float(self.request_throughput)
                if self.request_throughput
                else self.workload.n_requests / float(self.total_s)
            ),
            tpot_s=nan if self.decode_s_per_token is None else float(self.decode_s_per_token),
            servable=True,
            backend=self.backend,
            tokens_per_s_q05=tps - spread / 2,
            tokens_per_s_q95=tps + spread / 2,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the arch as its shape dict plus its label."""
        out = asdict(self)
        out["arch"] = self.arch.shape()
        out["label"] = self.arch.label()
        out["times_s"] = list(self.times_s)
        out["cpu_times_s"] = list(self.cpu_times_s)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Measurement":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["arch"] = Arch.from_mapping(data["arch"])
        values["times_s"] = tuple(data.get("times_s") or ())
        values["cpu_times_s"] = tuple(data.get("cpu_times_s") or ())
        values["versions"] = dict(data.get("versions") or {})
        return cls(**values)


# ---- cache ------------------------------------------------------------------------------------
_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    key TEXT PRIMARY KEY,
    arch TEXT NOT NULL,
    hardware_id TEXT NOT NULL,
    backend TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    input_len INTEGER NOT NULL,
    output_len INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    versions TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_hw ON measurements (hardware_id, backend);
"""


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class MeasurementCacheError(ArchoptError):
    """The measurement cache file is corrupt, unreadable or cannot be written."""


class MeasurementCache:
    """Measurements in SQLite (default ``$ARCHOPT_HOME/measurements.sqlite``).

    Keyed by the arch shape, hardware id, backend, batch size, input and output lengths, dtype
    and :func:`library_versions`; a later ``put`` with the same key replaces the earlier one.

    Reads never create anything (a missing file is an empty cache) and open the file read-only;
    only :meth:`put` creates the folder and the file. A file that is not a readable cache
    (corrupt, truncated, not SQLite) raises :class:`MeasurementCacheError` naming it and is never
    written to.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()

    # -- sqlite access: every error becomes one line naming the file --------------------------
    def _error(
        self, exc: sqlite3.Error | ValueError | KeyError | TypeError
    ) -> MeasurementCacheError:
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, sqlite3.OperationalError):  # locked, unreadable, read-only
            return MeasurementCacheError(f"cannot use the measurement cache {self.path}: {text}")
        return MeasurementCacheError(
            f"measurement cache {self.path} is corrupt ({text}); move it away (e.g. mv {self.path} "
            f"{self.path}.bad) and archopt starts a new, empty cache"
        )

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` from a read-only connection after an integrity check (a damaged file
        can otherwise answer with some rows missing); ``[]`` when there is no cache yet."""
        if not self.path.exists():
            return []
        if not self.path.is_file():
            raise MeasurementCacheError(f"measurement cache {self.path} is not a file")
        try:
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
            try:
                check = [str(r[0]) for r in con.execute("PRAGMA quick_check").fetchall()]
                if check != ["ok"]:  # a few ms for thousands of measurements
                    raise sqlite3.DatabaseError("integrity check failed: " + check[0][:120])
                tables = con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'measurements'"
                ).fetchall()
                return con.execute(sql, args).fetchall() if tables else []
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _payloads(self, rows: list[tuple[Any, ...]]) -> list[Measurement]:
        try:
            return [Measurement.from_dict(json.loads(r[0])) for r in rows]
        except (ValueError, KeyError, TypeError) as exc:  # ArchError is a ValueError too
            raise self._error(exc) from None

    @staticmethod
    def key(
        arch: Arch,
        hardware_id: str,
        backend: str,
        workload: Workload,
        versions: dict[str, str] | None = None,
    ) -> str:
        versions = versions if versions is not None else library_versions(backend)
        fields_ = {
            "arch": arch.shape(),
            "hardware_id": hardware_id.lower(),
            "backend": backend,
            "batch_size": workload.batch_size,
            "input_len": workload.input_len,
            "output_len": workload.output_len,
            "dtype": workload.dtype,
            "versions": versions,
        }
        # The rest of the workload only when it differs from the defaults (keeps older keys).
        default = Workload(workload.batch_size)
        for name in ("num_requests", "tp", "gpu_memory_utilization", "max_batched_tokens"):
            if getattr(workload, name) != getattr(default, name):
                fields_[name] = getattr(workload, name)
        return _json(fields_)

    def lookup(
        self,
        arch: Arch,
        hardware_id: str,
        backend: str,
        workload: Workload,
        versions: dict[str, str] | None = None,
    ) -> Measurement | None:
        """The cached measurement (ok or failed) for this key under the current versions."""
        key = self.key(arch, hardware_id, backend, workload, versions)
        rows = self._read("SELECT payload FROM measurements WHERE key = ?", (key,))
        return self._payloads(rows[:1])[0] if rows else None

    def newest_ok(self, arch: Arch, hardware_id: str, workload: Workload) -> Measurement | None:
        """The newest successful measurement of ``arch`` on ``hardware_id`` for ``workload``
        (its backend included), under any library versions and from any origin (harness runs
        and imported files alike)."""
        found = None
        for m in self.records(hardware_id, workload.backend, status="ok"):
            if m.arch == arch and m.workload.same_run(workload):
                found = m  # records are oldest first
        return found

    def put(self, m: Measurement) -> None:
        """Store ``m`` under its own key (replacing an earlier result).

        Raises:
            MeasurementCacheError: the file is corrupt (it is left untouched) or the folder or
                file cannot be written.
        """
        key = self.key(m.arch, m.hardware_id, m.backend, m.workload, m.versions)
        ensure_writable_folder(self.path.parent, "measurement cache folder", HOME_HINT)
        # Refuse a damaged file before writing to it (the check is part of every read).
        self._read("SELECT 1")
        try:
            con = sqlite3.connect(self.path, timeout=30.0)
            try:
                with con:
                    con.executescript(_SCHEMA)
                    con.execute(
                        "INSERT OR REPLACE INTO measurements VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            key,
                            _json(m.arch.shape()),
                            m.hardware_id,
                            m.backend,
                            m.batch_size,
                            m.input_len,
                            m.output_len,
                            m.dtype,
                            _json(m.versions),
                            m.status,
                            _json(m.to_dict()),
                            m.created_at,
                        ),
                    )
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def records(
        self,
        hardware_id: str | None = None,
        backend: str | None = None,
        *,
        status: str | None = None,
    ) -> list[Measurement]:
        """Every cached measurement, optionally filtered, oldest first."""
        sql, args = "SELECT payload FROM measurements WHERE 1=1", []
        for column, value in (
            ("hardware_id", hardware_id and hardware_id.lower()),
            ("backend", backend),
            ("status", status),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        return self._payloads(self._read(sql + " ORDER BY created_at", args))

    def __len__(self) -> int:
        rows = self._read("SELECT COUNT(*) FROM measurements")
        return int(rows[0][0]) if rows else 0
