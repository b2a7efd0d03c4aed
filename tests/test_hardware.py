"""Hardware profiles: datasheet numbers, lookup, user files, device-name mapping."""

from __future__ import annotations

import json

import pytest

from models.errors import ArchoptError
from models.hardware import (BUILTIN_HARDWARE, Hardware, HardwareError, get_hardware,
                             hardware_for_device, list_hardware, load_hardware_file)

DATASHEET = {  # id: (TFLOP/s dense bf16, GB/s, GB)
    "a100-40gb": (312, 1555, 40), "a100-80gb": (312, 2039, 80), "h100-sxm": (989, 3350, 80),
    "h100-pcie": (756, 2000, 80), "h200": (989, 4800, 141), "l4": (121, 300, 24),
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
    (archopt_home / "hardware.json").write_text(json.dumps(
        {"MI300X": {"name": "AMD MI300X", "peak_flops": 1307e12, "mem_bandwidth": 5.3e12,
                    "mem_bytes": 192e9, "source": "AMD datasheet"}}))
    hw = get_hardware("mi300x")
    assert hw == Hardware("mi300x", "AMD MI300X", 1307e12, 5.3e12, 192e9, "AMD datasheet")
    assert "mi300x" in {h.id for h in list_hardware()}


def test_user_profiles_from_explicit_file_list_format(tmp_path, archopt_home) -> None:
    path = tmp_path / "hw.json"
    path.write_text(json.dumps([{"id": "my-gpu", "peak_flops": 1e14, "mem_bandwidth": 1e12, "mem_bytes": 1.6e10}]))
    hw = get_hardware("my-gpu", path)
    assert hw.peak_flops == 1e14 and hw.name == "my-gpu" and str(path) in hw.source
    with pytest.raises(HardwareError):  # not visible without the file
        get_hardware("my-gpu")


@pytest.mark.parametrize("entry,field", [
    ({"id": "x", "peak_flops": -1, "mem_bandwidth": 1, "mem_bytes": 1}, "peak_flops"),
    ({"id": "x", "peak_flops": 1, "mem_bandwidth": "fast", "mem_bytes": 1}, "mem_bandwidth"),
    ({"id": "x", "peak_flops": 1, "mem_bandwidth": 1}, "mem_bytes"),
    ({"id": "x", "peak_flops": 1, "mem_bandwidth": 1, "mem_bytes": 1, "tdp": 700}, "tdp"),
    ({"id": "", "peak_flops": 1, "mem_bandwidth": 1, "mem_bytes": 1}, "id"),
])
def test_invalid_user_profile_names_entry_and_field(tmp_path, entry, field) -> None:
    path = tmp_path / "hw.json"
    path.write_text(json.dumps([{"id": "ok", "peak_flops": 1, "mem_bandwidth": 1, "mem_bytes": 1}, entry]))
    with pytest.raises(HardwareError, match=rf"entry 1.*{field}"):
        load_hardware_file(path)


def test_unreadable_hardware_file(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(HardwareError, match="cannot read"):
        load_hardware_file(bad)
    with pytest.raises(HardwareError, match="not found"):
        load_hardware_file(tmp_path / "missing.json")
    bad.write_text("3")
    with pytest.raises(HardwareError, match="list or an object"):
        load_hardware_file(bad)


@pytest.mark.parametrize("name,expected", [
    ("NVIDIA A100-SXM4-40GB", "a100-40gb"), ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
    ("NVIDIA A100 80GB PCIe", "a100-80gb"), ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA H200", "h200"), ("NVIDIA L4", "l4"),
    ("NVIDIA L40S", "cuda-nvidia-l40s"), ("NVIDIA GeForce RTX 4090", "cuda-nvidia-geforce-rtx-4090"),
    ("cpu", "cpu"),
])
def test_hardware_for_device(name: str, expected: str) -> None:
    assert hardware_for_device(name) == expected
