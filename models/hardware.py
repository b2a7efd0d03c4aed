"""Hardware profiles: peak dense bf16 FLOP/s, memory bandwidth, memory size, GPU interconnect.

The built-in accelerator numbers are vendor datasheet values (dense, i.e. without 2:4 sparsity):

* NVIDIA A100 datasheet (A100 Tensor Core GPU, 2021, SXM4): BF16 312 TFLOP/s; 40 GB HBM2 at
  1,555 GB/s; 80 GB HBM2e at 2,039 GB/s.
* NVIDIA H100 datasheet (H100 Tensor Core GPU, 2023): SXM5 BF16 989 TFLOP/s dense (1,979 with
  sparsity), 80 GB at 3.35 TB/s; PCIe BF16 756 TFLOP/s dense, 80 GB at 2.0 TB/s.
* NVIDIA H200 datasheet (2024, SXM): BF16 989 TFLOP/s dense, 141 GB HBM3e at 4.8 TB/s.
* NVIDIA L4 datasheet (2023): BF16 121 TFLOP/s dense (242 with sparsity), 24 GB GDDR6 at 300 GB/s.

``interconnect_bandwidth`` is the GPU-to-GPU link of the same datasheets, both directions
together as NVIDIA quotes it (the serving model uses half of it per direction): A100 SXM4
third-generation NVLink 600 GB/s; H100 SXM5 and H200 SXM fourth-generation NVLink 900 GB/s;
H100 PCIe: PCIe Gen5 x16 128 GB/s (its optional NVLink bridge, 600 GB/s, is not assumed);
L4: PCIe Gen4 x16 64 GB/s. ``cpu`` has none (tensor-parallel serving needs one).

``cpu`` is the development machine (2 vCPU AMD EPYC, Zen 5, AVX-512 BF16, KVM guest); its
numbers are measured, not a datasheet: ``peak_flops`` is the best rate of a 2048x2048 bf16
``torch.matmul`` (about 0.87 TFLOP/s, torch 2.13), ``mem_bandwidth`` the rate of a 1 GiB
``torch.sum`` read (about 50 GB/s), ``mem_bytes`` the machine's physical memory (read at run
time, 24 GB on the dev machine). The throughput model's calibration absorbs the rest.

User profiles live in ``$ARCHOPT_HOME/hardware.json`` (or a file passed explicitly), either a
list of objects or a mapping ``id -> object`` with the fields of :class:`Hardware` (``name``,
``source`` and ``interconnect_bandwidth`` optional) in base units (FLOP/s, bytes/s, bytes; ``312e12``, not ``312``), each within
:data:`PLAUSIBLE_HARDWARE_RANGES`. A user profile with a built-in id replaces the built-in one.
The file is read with :func:`models.files.read_json` (1 MiB, strict JSON).

A broken ``$ARCHOPT_HOME/hardware.json`` only stops what needs it: :func:`get_hardware` of a
built-in id warns and uses the built-in profiles when the file cannot be read, and an invalid
entry is skipped with a warning unless it is the profile asked for. :func:`list_hardware` and an
explicitly passed file are strict.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import ArchoptError
from .files import read_json
from .home import archopt_home

__all__ = [
    "Hardware",
    "HardwareError",
    "BUILTIN_HARDWARE",
    "get_hardware",
    "list_hardware",
    "load_hardware_file",
    "hardware_for_device",
    "USER_HARDWARE_FILE",
    "PLAUSIBLE_HARDWARE_RANGES",
]

#: File name of the user hardware profiles under ``$ARCHOPT_HOME``.
USER_HARDWARE_FILE = "hardware.json"

_TERA = 1e12
_GB = 1e9  # datasheets use decimal GB and GB/s

#: Accepted ``[low, high]`` of each profile number, in base units. Wide enough for anything
#: from a small CPU (~1e11 FLOP/s, ~1e10 B/s) to beyond a GB200 NVL rack; values outside are
#: typos or unit slips (``312`` meaning TFLOP/s) that would make predictions overflow.
PLAUSIBLE_HARDWARE_RANGES: dict[str, tuple[float, float, str]] = {
    "peak_flops": (1e9, 1e18, "FLOP/s"),  # 1 GFLOP/s .. 1 EFLOP/s
    "mem_bandwidth": (1e8, 1e15, "bytes/s"),  # 0.1 GB/s .. 1 PB/s
    "mem_bytes": (1e8, 1e15, "bytes"),  # 100 MB .. 1 PB
    "interconnect_bandwidth": (1e8, 1e14, "bytes/s"),  # 0.1 GB/s .. 100 TB/s (optional)
}


class HardwareError(ArchoptError):
    """Unknown hardware id or an invalid hardware profile."""


def _normalise_id(name: str) -> str:
    """Ids are case-insensitive and read ``_`` and spaces as ``-``."""
    return re.sub(r"[\s_]+", "-", str(name).strip().lower())


@dataclass(frozen=True)
class Hardware:
    """One device the throughput model can price.

    Args:
        id: identifier used on the command line (``"a100-40gb"``; stored lower-case with ``_``
            and spaces as ``-``).
        name: human-readable name.
        peak_flops: dense bf16 FLOP/s.
        mem_bandwidth: memory bandwidth in bytes/s.
        mem_bytes: device memory in bytes.
        source: where the numbers come from.
        interconnect_bandwidth: GPU-to-GPU bytes/s, both directions together (``None``: no
            link; tensor-parallel serving is then refused).
    """

    id: str
    name: str
    peak_flops: float
    mem_bandwidth: float
    mem_bytes: float
    source: str
    interconnect_bandwidth: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise HardwareError(f"hardware id must be a non-empty string, got {self.id!r}")
        object.__setattr__(self, "id", _normalise_id(self.id))
        for name, (low, high, unit) in PLAUSIBLE_HARDWARE_RANGES.items():
            value = getattr(self, name)
            if value is None and name == "interconnect_bandwidth":
                continue
            try:
                as_float = float(value)
            except (TypeError, ValueError, OverflowError):
                raise HardwareError(
                    f"hardware {self.id!r}: {name} must be a number, got {value!r}"
                ) from None
            if isinstance(value, bool) or not math.isfinite(as_float) or as_float <= 0:
                raise HardwareError(
                    f"hardware {self.id!r}: {name} must be a positive number, got {value!r}"
                )
            if not low <= as_float <= high:
                raise HardwareError(
                    f"hardware {self.id!r}: {name} {as_float:g} is outside the "
                    f"plausible range [{low:g}, {high:g}] {unit} (give it in "
                    f"{unit}, not in tera- or giga-units)"
                )
            object.__setattr__(self, name, as_float)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _physical_memory_bytes() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 24 * _GB


def _builtin() -> dict[str, Hardware]:
    profiles = [
        Hardware(
            "a100-40gb",
            "NVIDIA A100-SXM4-40GB",
            312 * _TERA,
            1555 * _GB,
            40 * _GB,
            "NVIDIA A100 datasheet: BF16 312 TFLOP/s dense, HBM2 1,555 GB/s, 40 GB, "
            "NVLink 600 GB/s",
            600 * _GB,
        ),
        Hardware(
            "a100-80gb",
            "NVIDIA A100-SXM4-80GB",
            312 * _TERA,
            2039 * _GB,
            80 * _GB,
            "NVIDIA A100 datasheet: BF16 312 TFLOP/s dense, HBM2e 2,039 GB/s, 80 GB, "
            "NVLink 600 GB/s",
            600 * _GB,
        ),
        Hardware(
            "h100-sxm",
            "NVIDIA H100 SXM5 80GB",
            989 * _TERA,
            3350 * _GB,
            80 * _GB,
            "NVIDIA H100 datasheet: SXM5 BF16 989 TFLOP/s dense, HBM3 3.35 TB/s, 80 GB, "
            "NVLink 900 GB/s",
            900 * _GB,
        ),
        Hardware(
            "h100-pcie",
            "NVIDIA H100 PCIe 80GB",
            756 * _TERA,
            2000 * _GB,
            80 * _GB,
            "NVIDIA H100 datasheet: PCIe BF16 756 TFLOP/s dense, HBM2e 2.0 TB/s, 80 GB, "
            "PCIe Gen5 128 GB/s",
            128 * _GB,
        ),
        Hardware(
            "h200",
            "NVIDIA H200 SXM 141GB",
            989 * _TERA,
            4800 * _GB,
            141 * _GB,
            "NVIDIA H200 datasheet: BF16 989 TFLOP/s dense, HBM3e 4.8 TB/s, 141 GB, "
            "NVLink 900 GB/s",
            900 * _GB,
        ),
        Hardware(
            "l4",
            "NVIDIA L4 24GB",
            121 * _TERA,
            300 * _GB,
            24 * _GB,
            "NVIDIA L4 datasheet: BF16 121 TFLOP/s dense, GDDR6 300 GB/s, 24 GB, PCIe Gen4 64 GB/s",
            64 * _GB,
        ),
        Hardware(
            "cpu",
            "This machine's CPU (dev: 2 vCPU AMD EPYC Zen 5)",
            0.87 * _TERA,
            50 * _GB,
            _physical_memory_bytes(),
            "measured on the dev machine: bf16 2048^2 torch.matmul 0.87 TFLOP/s, "
            "1 GiB torch.sum read 50 GB/s; memory = physical RAM",
        ),
    ]
    return {hw.id: hw for hw in profiles}


#: The built-in profiles by id.
BUILTIN_HARDWARE: dict[str, Hardware] = _builtin()


def _read_entries(path: Path) -> tuple[dict[str, Hardware], list[tuple[str | None, HardwareError]]]:
    """Valid profiles of a hardware file and, per invalid entry, its id (if any) and error.

    Raises:
        HardwareError: the file itself cannot be read (size, encoding, JSON, top-level type).
    """
    raw = read_json(path, what="hardware file", top=(dict, list), error=HardwareError)
    if isinstance(raw, dict):
        entries = [
            ({"id": key, **value} if isinstance(value, Mapping) else value)
            for key, value in raw.items()
        ]
    else:
        entries = raw
    out: dict[str, Hardware] = {}
    problems: list[tuple[str | None, HardwareError]] = []
    for i, entry in enumerate(entries):
        entry_id = (
            _normalise_id(entry["id"])
            if isinstance(entry, Mapping) and isinstance(entry.get("id"), str)
            else None
        )
        try:
            hw = _entry_profile(entry, f"hardware file {path}, entry {i}", path)
        except HardwareError as exc:
            problems.append((entry_id, exc))
            continue
        out[hw.id] = hw
    return out, problems


def _entry_profile(entry: Any, where: str, path: Path) -> Hardware:
    if not isinstance(entry, Mapping):
        raise HardwareError(f"{where}: expected an object, got {type(entry).__name__}")
    missing = [f for f in ("id", "peak_flops", "mem_bandwidth", "mem_bytes") if f not in entry]
    if missing:
        raise HardwareError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(
        set(entry)
        - {
            "id",
            "name",
            "peak_flops",
            "mem_bandwidth",
            "mem_bytes",
            "source",
            "interconnect_bandwidth",
        }
    )
    if unknown:
        raise HardwareError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for text in ("name", "source"):
        if entry.get(text) is not None and not isinstance(entry[text], str):
            raise HardwareError(f"{where}: {text} must be a string, got {entry[text]!r}")
    try:
        return Hardware(
            id=entry["id"],
            name=str(entry.get("name") or entry["id"]),
            peak_flops=entry["peak_flops"],
            mem_bandwidth=entry["mem_bandwidth"],
            mem_bytes=entry["mem_bytes"],
            source=str(entry.get("source") or f"user file {path}"),
            interconnect_bandwidth=entry.get("interconnect_bandwidth"),
        )
    except HardwareError as exc:
        raise HardwareError(f"{where}: {exc}") from None


def load_hardware_file(path: str | Path) -> dict[str, Hardware]:
    """Read and validate user profiles from a JSON file (list, or mapping id -> profile).

    Raises:
        HardwareError: unreadable file, or an entry with a missing/invalid field (named).
    """
    profiles, problems = _read_entries(Path(path))
    if problems:
        raise problems[0][1]
    return profiles


def _all_profiles(path: str | Path | None, wanted: str | None = None) -> dict[str, Hardware]:
    """Built-ins plus user profiles; with ``wanted`` (a normalised id), a broken home file only
    raises when it concerns that profile, and warns otherwise."""
    profiles = dict(BUILTIN_HARDWARE)
    if path is not None or wanted is None:
        user = Path(path) if path is not None else archopt_home(create=False) / USER_HARDWARE_FILE
        if path is not None or user.exists():
            profiles.update(load_hardware_file(user))
        return profiles
    user = archopt_home(create=False) / USER_HARDWARE_FILE
    if not user.exists():
        return profiles
    try:
        valid, problems = _read_entries(user)
    except HardwareError as exc:
        if wanted not in BUILTIN_HARDWARE:
            raise
        warnings.warn(
            f"{exc}; ignoring that file and using the built-in profile {wanted!r}", stacklevel=3
        )
        return profiles
    for entry_id, problem in problems:
        # An entry without a readable id might be the wanted one: only then is it fatal.
        if entry_id == wanted or (
            entry_id is None and wanted not in valid and wanted not in BUILTIN_HARDWARE
        ):
            raise problem
        warnings.warn(f"{problem}; that entry is skipped", stacklevel=3)
    profiles.update(valid)
    return profiles


def list_hardware(path: str | Path | None = None) -> list[Hardware]:
    """Built-in profiles plus user profiles (``path`` or ``$ARCHOPT_HOME/hardware.json``).

    Raises:
        HardwareError: the user file is unreadable or holds an invalid entry (strict).
    """
    return list(_all_profiles(path).values())


def get_hardware(name: str | Hardware, path: str | Path | None = None) -> Hardware:
    """The profile with id ``name`` (case-insensitive; ``_`` and spaces read as ``-``).

    A broken ``$ARCHOPT_HOME/hardware.json`` is fatal only for the profile it breaks: otherwise
    a warning says what was ignored. An explicit ``path`` is strict.

    Raises:
        HardwareError: unknown id (the message lists the known ones), or an invalid user file or
            entry that concerns ``name``.
    """
    if isinstance(name, Hardware):
        return name
    key = _normalise_id(name)
    profiles = _all_profiles(path, key)
    try:
        return profiles[key]
    except KeyError:
        raise HardwareError(f"unknown hardware {name!r}; known: {', '.join(profiles)}") from None


# (substring patterns in torch.cuda.get_device_name(), profile id); first match wins.
_DEVICE_PATTERNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("h200",), "h200"),
    (("h100", "pcie"), "h100-pcie"),
    (("h100",), "h100-sxm"),
    (("a100", "80g"), "a100-80gb"),
    (("a100",), "a100-40gb"),
    (("l4",), "l4"),
)


def hardware_for_device(device_name: str) -> str:
    """Map a device name (``torch.cuda.get_device_name()``, or ``"cpu"``) to a profile id.

    Unknown GPUs get a slug id (``"cuda-nvidia-geforce-rtx-4090"``) so measurements of them are
    still cached under a stable key.
    """
    low = device_name.strip().lower()
    if low in ("", "cpu"):
        return "cpu"
    for patterns, hw_id in _DEVICE_PATTERNS:
        if all(re.search(rf"(?<![a-z0-9]){re.escape(p)}(?![0-9])", low) for p in patterns):
            return hw_id
    return "cuda-" + re.sub(r"[^a-z0-9]+", "-", low).strip("-")
