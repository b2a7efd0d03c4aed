"""The measurement harness really runs a tiny model on CPU, caches, and records failures."""

from __future__ import annotations

import pytest

from models import measure as measure_mod
from models.arch import Arch
from models.measure import Measurement, MeasurementCache, library_versions, measure
from models.throughput import Workload, calibrate

TINY = Arch(128, 2, 4, 2, 32, 256, 512, True)
WL = Workload(batch_size=2, input_len=8, output_len=6, dtype="float32", backend="hf")


@pytest.fixture
def cache(tmp_path) -> MeasurementCache:
    return MeasurementCache(tmp_path / "m.sqlite")


@pytest.mark.slow
def test_tiny_model_really_runs_and_is_cached(cache, monkeypatch) -> None:
    m = measure(TINY, WL, repeats=2, cache=cache, device="cpu", threads=1)
    assert m.ok, m.reason
    assert (m.hardware_id, m.backend, m.device) == ("cpu", "hf", "cpu")
    assert (m.batch_size, m.input_len, m.output_len, m.dtype, m.repeats) == (2, 8, 6, "float32", 2)
    assert len(m.times_s) == 2 and all(t > 0 for t in m.times_s)
    rates = [2 * 6 / t for t in m.times_s]
    assert min(rates) <= m.tokens_per_s <= max(rates) and min(m.times_s) <= m.total_s <= max(
        m.times_s
    )
    assert m.tokens_per_s_spread == pytest.approx(max(rates) - min(rates))
    assert 0 < m.ttft_s < max(m.times_s)
    assert 0 < m.decode_s_per_token < max(m.times_s) / 5
    assert m.tokens_per_s_spread >= 0 and m.peak_mem_bytes > 0
    assert m.versions == {**library_versions("hf"), "torch_threads": "1"}

    # Second call: served from the cache, the model is not run again.
    def boom(*args, **kwargs):
        raise AssertionError("measured twice")

    monkeypatch.setitem(measure_mod.RUNNERS, "hf", boom)
    assert measure(TINY, WL, repeats=2, cache=cache, device="cpu", threads=1) == m
    assert cache.lookup(TINY, "cpu", "hf", WL, versions=m.versions) == m
    assert cache.lookup(TINY, "cpu", "hf", WL) is None  # the thread count is part of the key
    assert [r.status for r in cache.records("cpu", "hf")] == ["ok"]
    # Measurements feed calibration directly.
    assert calibrate([m], "cpu", "hf").n_points == 1


def test_runner_crash_is_recorded_not_raised(cache, monkeypatch) -> None:
    calls = []

    def crash(arch, wl, repeats, device, threads=None):
        calls.append(1)
        raise RuntimeError("CUDA error: device-side assert\ntriggered")

    monkeypatch.setitem(measure_mod.RUNNERS, "hf", crash)
    m = measure(TINY, WL, cache=cache, device="cpu")
    assert m.status == "failed" and not m.ok
    assert m.reason == "RuntimeError: CUDA error: device-side assert triggered"
    assert m.tokens_per_s is None and m.to_timing_record() is None
    assert measure(TINY, WL, cache=cache, device="cpu") == m and len(calls) == 1  # cached
    measure(TINY, WL, cache=cache, device="cpu", force=True)
    assert len(calls) == 2 and len(cache) == 1


def test_out_of_memory_is_recorded(cache, monkeypatch) -> None:
    def oom(arch, wl, repeats, device, threads=None):
        raise MemoryError("cannot allocate 12 GB")

    monkeypatch.setitem(measure_mod.RUNNERS, "hf", oom)
    m = measure(TINY, WL, cache=cache, device="cpu")
    assert m.status == "failed" and m.reason.startswith("out of memory")


def test_model_larger_than_memory_is_refused_before_running(cache, monkeypatch) -> None:
    monkeypatch.setitem(measure_mod.RUNNERS, "hf", lambda *a: pytest.fail("should not run"))
    huge = Arch(16384, 126, 128, 8, 128, 53248, 128256)
    m = measure(huge, Workload(1, 16, 4, backend="hf"), cache=cache, device="cpu")
    assert m.status == "failed" and "does not fit in memory" in m.reason


def test_vllm_without_vllm_or_gpu_fails_with_clear_reason(cache) -> None:
    m = measure(TINY, WL, backend="vllm", cache=cache, device="cpu")
    assert m.status == "failed" and m.backend == "vllm"
    try:
        import vllm  # noqa: F401

        assert "GPU" in m.reason
    except ImportError:
        assert "vllm is not installed" in m.reason
    assert m.versions["vllm"] in ("absent",) or m.versions["vllm"]
    assert cache.records(backend="vllm")[0].reason == m.reason


def test_cache_key_includes_versions_and_workload(cache) -> None:
    m = Measurement(
        "ok",
        "",
        TINY,
        "cpu",
        "hf",
        1,
        8,
        4,
        "bfloat16",
        tokens_per_s=10.0,
        tokens_per_s_spread=1.0,
        ttft_s=0.1,
        decode_s_per_token=0.1,
        total_s=0.4,
        peak_mem_bytes=1e6,
        repeats=3,
        device="cpu",
        versions=library_versions("hf"),
        created_at=1.0,
        times_s=(0.4, 0.41, 0.39),
    )
    cache.put(m)
    wl = Workload(1, 8, 4, backend="hf")
    assert cache.lookup(TINY, "CPU", "hf", wl) == m
    assert (
        cache.lookup(TINY, "cpu", "hf", wl, versions={"torch": "0.1", "transformers": "1"}) is None
    )
    assert cache.lookup(TINY, "cpu", "hf", Workload(1, 8, 5, backend="hf")) is None
    assert cache.lookup(TINY, "cpu", "vllm", wl) is None
    assert cache.lookup(TINY.replace(n_layers=3), "cpu", "hf", wl) is None
    assert cache.records("a100-40gb") == [] and cache.records(status="failed") == []
    assert Measurement.from_dict(m.to_dict()) == m
    pred = m.to_prediction()
    assert pred.source == "measured" and pred.tokens_per_s == 10.0


def test_cache_persists_across_instances(tmp_path) -> None:
    path = tmp_path / "m.sqlite"
    m = Measurement(
        "failed", "why", TINY, "cpu", "hf", 1, 8, 4, "bfloat16", versions=library_versions("hf")
    )
    MeasurementCache(path).put(m)
    assert MeasurementCache(path).lookup(TINY, "cpu", "hf", Workload(1, 8, 4, backend="hf")) == m


def test_default_cache_lives_in_archopt_home(archopt_home, monkeypatch) -> None:
    monkeypatch.setitem(
        measure_mod.RUNNERS, "hf", lambda *a: (_ for _ in ()).throw(RuntimeError("x"))
    )
    measure(TINY, WL, device="cpu")
    assert (archopt_home / "measurements.sqlite").exists()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(repeats=0), "repeats"),
        (dict(backend="trt"), "backend"),
        (dict(device="tpu"), "device"),
        (dict(threads=0), "threads"),
    ],
)
def test_bad_arguments_raise(cache, kwargs, match) -> None:
    with pytest.raises(Exception, match=match):
        measure(TINY, WL, cache=cache, **kwargs)


# ---- a damaged cache file: one line naming it, and never written to (issue 10, finding 3) ----
def _filled_cache(path) -> bytes:
    cache = MeasurementCache(path)
    for layers in range(1, 121):
        cache.put(
            Measurement(
                "failed",
                "why" * 60,
                TINY.replace(n_layers=layers),
                "cpu",
                "hf",
                1,
                8,
                4,
                "bfloat16",
                versions=library_versions("hf"),
                created_at=float(layers),
            )
        )
    return path.read_bytes()


def _damage(kind: str, good: bytes) -> bytes:
    if kind == "not sqlite":
        return bytes(range(256)) * 20
    if kind == "truncated":
        return good[: len(good) // 2]
    damaged = bytearray(good)  # a valid header, one b-tree page overwritten
    damaged[8192:12288] = bytes((i * 37 + 11) % 256 for i in range(4096))
    return bytes(damaged)


@pytest.mark.parametrize("kind", ["not sqlite", "truncated", "damaged page"])
@pytest.mark.parametrize("use", ["records", "lookup", "len", "put", "measure"])
def test_corrupt_cache_is_one_line_error_and_left_untouched(
    tmp_path, monkeypatch, kind, use
) -> None:
    from models.measure import MeasurementCacheError

    good = _filled_cache(tmp_path / "good.sqlite")
    path = tmp_path / "measurements.sqlite"
    path.write_bytes(_damage(kind, good))
    before = path.read_bytes()
    cache = MeasurementCache(path)
    monkeypatch.setitem(measure_mod.RUNNERS, "hf", lambda *a: pytest.fail("should not run"))
    calls = {
        "records": lambda: cache.records("cpu", "hf", status="ok"),
        "lookup": lambda: cache.lookup(TINY, "cpu", "hf", Workload(1, 8, 4, backend="hf")),
        "len": lambda: len(cache),
        "put": lambda: cache.put(
            Measurement(
                "failed",
                "x",
                TINY,
                "cpu",
                "hf",
                1,
                8,
                4,
                "bfloat16",
                versions=library_versions("hf"),
            )
        ),
        "measure": lambda: measure(TINY, WL, cache=cache, device="cpu"),
    }
    with pytest.raises(MeasurementCacheError) as err:
        calls[use]()
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "corrupt" in message and "move it away" in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.sqlite", "measurements.sqlite"]


def test_corrupt_payload_row_names_the_cache(tmp_path) -> None:
    import sqlite3

    from models.measure import MeasurementCacheError

    path = tmp_path / "m.sqlite"
    _filled_cache(path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE measurements SET payload = '{\"arch\": 5' WHERE created_at = 3")
    con.close()
    with pytest.raises(MeasurementCacheError, match="corrupt"):
        MeasurementCache(path).records()


def test_reading_a_missing_cache_creates_nothing(archopt_home) -> None:
    cache = MeasurementCache()
    assert cache.records() == [] and len(cache) == 0
    assert cache.lookup(TINY, "cpu", "hf", Workload(1, 8, 4, backend="hf")) is None
    assert not archopt_home.exists()


def test_vllm_harness_reads_the_engine_memory_not_the_parent(monkeypatch) -> None:
    """The CUDA/vLLM path cannot run here; its memory bookkeeping is checked with a fake NVML:
    memory of this process's children (vLLM's engine core) counts, other processes' does not,
    and without attributable processes the growth of device memory since the baseline does."""
    import subprocess
    import sys
    import types

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        used = {"now": [12e9, 30e9]}
        procs = [
            types.SimpleNamespace(pid=child.pid, usedGpuMemory=int(28e9)),
            types.SimpleNamespace(pid=2**22 + 7, usedGpuMemory=int(5e9)),
        ]
        fake = types.SimpleNamespace(
            nvmlInit=lambda: None,
            nvmlDeviceGetCount=lambda: 2,
            nvmlDeviceGetHandleByIndex=lambda i: i,
            nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=used["now"][h]),
            nvmlDeviceGetComputeRunningProcesses=lambda h: procs if h == 1 else [],
        )
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        peak, how = measure_mod.engine_memory([1e9, 1e9])
        assert peak == 28e9 and "children" in how
        procs[0].pid = 2**22 + 8  # a container: NVML reports host PIDs
        peak, how = measure_mod.engine_memory([1e9, 1e9])
        assert peak == 29e9 and "growth" in how
    finally:
        child.kill()
        child.wait()


def test_workload_fields_round_trip_through_a_measurement():
    wl = Workload(64, 4096, 1024, "bfloat16", "vllm", num_requests=128, tp=2)
    m = Measurement(
        status="ok",
        reason="",
        arch=Arch(2048, 16, 16, 4, 128, 5632, 32000),
        hardware_id="a100-40gb",
        **Measurement.workload_fields(wl),
    )
    assert m.workload == wl
