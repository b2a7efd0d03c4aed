"""Hardware profiles: datasheet numbers, lookup, user files, device-name mapping."""

from __future__ import annotations

import json

import pytest

from models.errors import ArchoptError
from models.hardware import (
    BUILTIN_HARDWARE,
    Hardware,
    HardwareError,
    get_hardware,
    hardware_for_device,
    list_hardware,
    load_hardware_file,
)

DATASHEET = {  # id: (TFLOP/s dense bf16, GB/s, GB)
    "a100-40gb": (312, 1555, 40),
    "a100-80gb": (312, 2039, 80),
    "h100-sxm": (989, 3350, 80),
    "h100-pcie": (756, 2000, 80),
    "h200": (989, 4800, 141),
    "l4": (121, 300, 24),
}


@pytest.mark.parametrize("hw_id", list(DATASHEET))
def test_datasheet_numbers(hw_id: str) -> None:
    hw = get_hardware(hw_id)
    tflops, gbs, gb = DATASHEET[hw_id]
    assert (hw.peak_flops, hw.mem_bandwidth, hw.mem_bytes) == (tflops * 1e12, gbs * 1e9, gb * 1e9)
    assert "datasheet" in hw.source.lower()


def test_cpu_profile_is_plausible() -> None:
    cpu = get_hardware("cpu")
    assert 1e10 < cpu.peak_flops < 1e14 and 1e9 < cpu.mem_bandwidth < 1e12 and cpu.mem_bytes > 1e9
    assert cpu.source


@pytest.mark.parametrize("name", ["A100-40GB", " h100_sxm ", "H200", "L4", "CPU", "a100 80gb"])
def test_lookup_is_case_insensitive(name: str) -> None:
    assert get_hardware(name).id in BUILTIN_HARDWARE


def test_unknown_hardware_lists_known_ids() -> None:
    with pytest.raises(ArchoptError, match="unknown hardware 'tpu-v5'.*a100-40gb.*cpu"):
        get_hardware("tpu-v5")


def test_list_hardware_has_all_builtins(archopt_home) -> None:
    assert {hw.id for hw in list_hardware()} == set(DATASHEET) | {"cpu"}


def test_user_profiles_from_home(archopt_home) -> None:
    archopt_home.mkdir(parents=True)
    (archopt_home / "hardware.json").write_text(
        json.dumps(
            {
                "MI300X": {
                    "name": "AMD MI300X",
                    "peak_flops": 1307e12,
                    "mem_bandwidth": 5.3e12,
                    "mem_bytes": 192e9,
                    "source": "AMD datasheet",
                }
            }
        )
    )
    hw = get_hardware("mi300x")
    assert hw == Hardware("mi300x", "AMD MI300X", 1307e12, 5.3e12, 192e9, "AMD datasheet")
    assert "mi300x" in {h.id for h in list_hardware()}


def test_user_profiles_from_explicit_file_list_format(tmp_path, archopt_home) -> None:
    path = tmp_path / "hw.json"
    path.write_text(json.dumps([{"id": "my-gpu", **GOOD}]))
    hw = get_hardware("my-gpu", path)
    assert hw.peak_flops == 1e14 and hw.name == "my-gpu" and str(path) in hw.source
    with pytest.raises(HardwareError):  # not visible without the file
        get_hardware("my-gpu")


GOOD = {"peak_flops": 1e14, "mem_bandwidth": 1e12, "mem_bytes": 1.6e10}


@pytest.mark.parametrize(
    "entry,field",
    [
        ({"id": "x", **GOOD, "peak_flops": -1}, "peak_flops"),
        ({"id": "x", **GOOD, "mem_bandwidth": "fast"}, "mem_bandwidth"),
        ({"id": "x", "peak_flops": 1e14, "mem_bandwidth": 1e12}, "mem_bytes"),
        ({"id": "x", **GOOD, "tdp": 700}, "tdp"),
        ({"id": "", **GOOD}, "id"),
        ({"id": "x", **GOOD, "peak_flops": 1e-300}, "peak_flops"),
        ({"id": "x", **GOOD, "peak_flops": 312}, "peak_flops"),
        ({"id": "x", **GOOD, "mem_bandwidth": 1e-300}, "mem_bandwidth"),
        ({"id": "x", **GOOD, "mem_bytes": 1e300}, "mem_bytes"),
        ({"id": "x", **GOOD, "name": 5}, "name"),
    ],
)
def test_invalid_user_profile_names_entry_and_field(tmp_path, entry, field) -> None:
    path = tmp_path / "hw.json"
    path.write_text(json.dumps([{"id": "ok", **GOOD}, entry]))
    with pytest.raises(HardwareError, match=rf"entry 1.*{field}"):
        load_hardware_file(path)


def test_unreadable_hardware_file(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(HardwareError, match="not valid JSON"):
        load_hardware_file(bad)
    with pytest.raises(HardwareError, match="not found"):
        load_hardware_file(tmp_path / "missing.json")
    bad.write_text("3")
    with pytest.raises(HardwareError, match="expected an object or a list"):
        load_hardware_file(bad)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA A100 80GB PCIe", "a100-80gb"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA L40S", "cuda-nvidia-l40s"),
        ("NVIDIA GeForce RTX 4090", "cuda-nvidia-geforce-rtx-4090"),
        ("cpu", "cpu"),
    ],
)
def test_hardware_for_device(name: str, expected: str) -> None:
    assert hardware_for_device(name) == expected


# ---- hostile hardware.json (issue 10, finding 6/7) -----------------------------------------------
@pytest.mark.parametrize(
    "content,match",
    [
        (
            '[{"id": "x", "peak_flops": Infinity, "mem_bandwidth": 1e12, "mem_bytes": 1e10}]',
            "Infinity is not allowed",
        ),
        (
            '[{"id": "x", "peak_flops": NaN, "mem_bandwidth": 1e12, "mem_bytes": 1e10}]',
            "NaN is not allowed",
        ),
        (
            '[{"id": "x", "peak_flops": 1e400, "mem_bandwidth": 1e12, "mem_bytes": 1e10}]',
            "must be finite",
        ),
        (b"\x00\xff\xfe\x89PNG binary", "not UTF-8"),
        ("[" * 50_000 + "]" * 50_000, "nests deeper than 32"),
        ('{"a": ' * 40 + "1" + "}" * 40, "nests deeper than 32"),
        ('["' + "x" * (1 << 20) + '"]', "larger than 1 MiB"),
        ('"a string"', "expected an object or a list"),
    ],
)
def test_hostile_hardware_file_is_one_line_error(tmp_path, content, match) -> None:
    path = tmp_path / "hw.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(HardwareError, match=match) as err:
        load_hardware_file(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_dev_zero_hardware_file_fails_fast_without_growing_memory() -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(HardwareError, match="larger than 1 MiB"):
        load_hardware_file("/dev/zero")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB


def _home_file(archopt_home, content: object) -> None:
    archopt_home.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (archopt_home / "hardware.json").write_text(text)


def test_unreadable_home_file_only_warns_for_builtin_profiles(archopt_home) -> None:
    _home_file(archopt_home, "[" * 5000)
    with pytest.warns(
        UserWarning, match="hardware.json nests deeper.*built-in profile 'a100-40gb'"
    ):
        assert get_hardware("a100-40gb") == BUILTIN_HARDWARE["a100-40gb"]
    with pytest.raises(HardwareError, match="nests deeper"):
        get_hardware("my-gpu")  # might have been in the file: fatal
    with pytest.raises(HardwareError, match="nests deeper"):
        list_hardware()  # the listing is strict


def test_invalid_home_entry_is_fatal_only_for_that_profile(archopt_home) -> None:
    _home_file(archopt_home, [{"id": "good", **GOOD}, {"id": "tiny", **GOOD, "peak_flops": 1e-300}])
    with pytest.warns(UserWarning, match="entry 1.*peak_flops.*skipped"):
        assert get_hardware("good").peak_flops == 1e14
    with pytest.warns(UserWarning, match="entry 1"):
        assert get_hardware("l4") == BUILTIN_HARDWARE["l4"]
    with pytest.raises(
        HardwareError, match=r"entry 1: hardware 'tiny': peak_flops 1e-300 is outside"
    ):
        get_hardware("tiny")
    with pytest.raises(HardwareError, match="entry 1"):
        list_hardware()


def test_underscore_ids_in_user_files_can_be_looked_up(tmp_path) -> None:
    path = tmp_path / "hw.json"
    path.write_text(json.dumps([{"id": "My_GPU", **GOOD}]))
    assert get_hardware("my-gpu", path).id == get_hardware("MY_GPU", path).id == "my-gpu"


@pytest.mark.parametrize(
    "field,low,high",
    [
        ("peak_flops", 1e9, 1e18),
        ("mem_bandwidth", 1e8, 1e15),
        ("mem_bytes", 1e8, 1e15),
        ("interconnect_bandwidth", 1e8, 1e14),
    ],
)
def test_plausible_range_edges_are_accepted_and_predict_finite(field, low, high) -> None:
    import math

    from models.arch import Arch
    from models.hardware import PLAUSIBLE_HARDWARE_RANGES
    from models.throughput import Workload, predict_throughput

    assert PLAUSIBLE_HARDWARE_RANGES[field][:2] == (low, high)
    big = Arch(65536, 2048, 512, 512, 128, 262144, 256000)  # ~1.3e14 params
    for value in (low, high):
        hw = Hardware(
            "edge", "edge", **{**GOOD, "interconnect_bandwidth": 1e11, field: value}, source="test"
        )
        for arch in (big, Arch(128, 2, 4, 2, 32, 256, 512)):
            for wl in (
                Workload(64, 4096, 1024),
                Workload(64, 4096, 1024, backend="hf"),
                Workload(64, 4096, 1024, tp=2),
            ):
                pred = predict_throughput(arch, hw, wl)
                assert all(
                    math.isfinite(v)
                    for v in (pred.tokens_per_s, pred.ttft_s, pred.total_s, pred.memory_bytes)
                )
        with pytest.raises(HardwareError, match=f"{field}.*outside the plausible range"):
            Hardware(
                "edge",
                "edge",
                **{**GOOD, field: value * (0.5 if value == low else 2)},
                source="test",
            )


def test_interconnect_bandwidth_in_user_profiles(tmp_path) -> None:
    path = tmp_path / "hw.json"
    path.write_text(
        json.dumps(
            [{"id": "linked", **GOOD, "interconnect_bandwidth": 4e11}, {"id": "single", **GOOD}]
        )
    )
    assert get_hardware("linked", path).interconnect_bandwidth == 4e11
    assert get_hardware("single", path).interconnect_bandwidth is None
    path.write_text(json.dumps([{"id": "x", **GOOD, "interconnect_bandwidth": 600}]))
    with pytest.raises(HardwareError, match="interconnect_bandwidth.*plausible range"):
        load_hardware_file(path)
    path.write_text(json.dumps([{"id": "x", **GOOD, "interconnect_bandwidth": "nvlink"}]))
    with pytest.raises(HardwareError, match="interconnect_bandwidth must be a number"):
        load_hardware_file(path)
