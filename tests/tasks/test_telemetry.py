"""The job telemetry sampler: real processes sampled with psutil, energy per stage from plain readings, and on a GPU
real NVML readings while a CUDA child works."""
import os
import subprocess
import sys
import time

import psutil
import pytest
import torch

from optimizers.events import stage_of
from tasks.energy import COUNTER, POWER, EnergyLedger
from tasks.process_tree import tree_usage
from tasks.telemetry import Sampler

JOB_SERIES = {"job/cpu_percent", "job/rss_mb", "host/memory_percent", "host/memory_used_mb"}
GPU_MEASURES = {"util_percent", "memory_mb", "power_w", "temperature_c", "sm_clock_mhz", "energy_j"}
# A parent that only waits and a grandchild that spins: the job's CPU is its whole process tree's.
BUSY_GRANDCHILD = ("import subprocess, sys; "
                   "subprocess.run([sys.executable, '-c', 'while True: pass'])")


def nvml_starts() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:  # noqa: BLE001 - whatever stops NVML here stops the sampler's too
        return False


def _spawn(code: str, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True, **options)


def _end(process: subprocess.Popen) -> None:
    os.killpg(process.pid, 9)  # its own session: the grandchildren go with it
    process.wait()


def _sample(sampler: Sampler, process: subprocess.Popen, *, ticks: int, interval: float) -> None:
    probe = psutil.Process(process.pid)
    for _ in range(ticks):
        time.sleep(interval)
        sampler.tick(probe)


def _series(events: list[dict], name: str) -> list[float]:
    return [e["value"] for e in events if e["kind"] == "resource" and e["name"] == name]


@pytest.mark.skipif(nvml_starts(), reason="NVML works here: the gpu test covers the sampler with NVML")
def test_without_nvml_the_sampler_reports_cpu_and_memory_only_and_says_so():
    events = []
    sampler = Sampler(interval_s=0.2, emit=events.append)
    sampler.start()
    busy = _spawn(BUSY_GRANDCHILD)
    try:
        _sample(sampler, busy, ticks=8, interval=0.2)
    finally:
        _end(busy)
    summary = sampler.finish()

    note = summary["note"]
    assert note.startswith("GPU telemetry off: NVML not available (") and note.endswith(
        "); reporting CPU and memory only.")
    assert events[0] == {"kind": "log", "message": note}  # said once, at the start
    assert {e["name"] for e in events if e["kind"] == "resource"} == JOB_SERIES  # no gpu series at all
    assert {key: value for key, value in summary.items() if key != "overhead"} == {
        "interval_s": 0.2, "samples": 8, "nvml": False, "note": note, "gpus": [], "energy_j": None,
        "energy_by_stage_j": {}}
    assert max(_series(events, "job/cpu_percent")[1:]) > 40  # the grandchild's spinning counts as the job's
    assert all(rss > 5 for rss in _series(events, "job/rss_mb"))  # two python processes
    assert all(0 < p < 100 for p in _series(events, "host/memory_percent"))
    total_mb = psutil.virtual_memory().total / 2**20
    assert all(0 < used < total_mb for used in _series(events, "host/memory_used_mb"))
    assert events[-1]["kind"] == "log" and events[-1]["message"].startswith("Telemetry: 8 samples every 0.2 s")


def test_a_sleeping_job_reads_near_zero_cpu_and_the_overhead_is_measured():
    events = []
    sampler = Sampler(interval_s=0.2, emit=events.append)
    sampler.start()
    sleeper = _spawn("import time; time.sleep(30)")
    try:
        _sample(sampler, sleeper, ticks=6, interval=0.2)
    finally:
        _end(sleeper)
    summary = sampler.finish()
    assert max(_series(events, "job/cpu_percent")[2:]) < 10  # after its start-up, it only sleeps
    cost = summary["overhead"]
    assert cost["ticks"] == summary["samples"] == 6
    assert 0 < cost["per_tick_ms"] <= cost["max_tick_ms"] < 100
    assert 0 < cost["wall_s"] < cost["job_wall_s"] and cost["cpu_s"] >= 0
    assert cost["job_wall_s"] >= 6 * 0.2
    assert 0 < cost["fraction"] < 0.25
    assert cost["fraction"] == pytest.approx(cost["wall_s"] / cost["job_wall_s"], rel=0.05)  # both rounded
    assert 0 <= cost["cpu_fraction"] < 0.25


def test_a_child_that_already_ended_still_counts_in_the_jobs_cpu_time():
    parent = _spawn("import subprocess, sys, time\n"
                    "subprocess.run([sys.executable, '-c', 'import time\\nt = time.process_time()\\n"
                    "while time.process_time() - t < 0.5: pass'])\n"
                    "print('done', flush=True)\n"
                    "time.sleep(30)", stdout=subprocess.PIPE)
    try:
        assert parent.stdout.readline() == b"done\n"  # the busy child has ended and been reaped
        cpu_s, rss = tree_usage(psutil.Process(parent.pid))
    finally:
        _end(parent)
    assert cpu_s >= 0.5 and rss > 0


@pytest.mark.parametrize("record, stage", [
    ({"kind": "stage", "name": "quantize"}, "quantize"),
    ({"kind": "progress", "done": 1, "total": 4, "stage": "calibrate"}, "calibrate"),
    ({"kind": "progress", "done": 1, "total": 4}, None),
    ({"kind": "metric", "name": "train/loss", "step": 1, "value": 0.5}, None),
    ({"kind": "resource", "name": "job/rss_mb", "value": 10.0}, None),
])
def test_the_stage_is_read_from_stage_and_progress_events_only(record, stage):
    assert stage_of(record) == stage


def test_energy_counter_deltas_go_to_the_stage_current_at_each_reading():
    ledger = EnergyLedger("prepare")
    assert ledger.counter(0, 0.0, 1_000_000) == 0.0  # the baseline: the GPU's joules since boot do not count
    assert ledger.counter(0, 1.0, 1_002_000) == 2.0
    ledger.enter("quantize")
    assert ledger.counter(0, 2.0, 1_010_000) == 10.0
    assert ledger.counter(0, 3.0, 1_015_500) == 15.5
    ledger.enter("store")
    assert ledger.counter(0, 4.0, 1_016_000) == 16.0
    assert ledger.by_stage == {"prepare": 2.0, "quantize": 13.5, "store": 0.5}
    assert ledger.total == sum(ledger.by_stage.values()) == 16.0
    assert ledger.method(0) == COUNTER


def test_a_gpu_without_a_counter_integrates_its_power_and_totals_add_up_over_gpus():
    ledger = EnergyLedger("prepare")
    ledger.counter(0, 0.0, 5_000)
    assert ledger.power(1, 0.0, 100.0) == 0.0
    assert ledger.power(1, 1.0, 200.0) == 150.0  # trapezoid: the mean of 100 W and 200 W for 1 s
    ledger.counter(0, 1.0, 7_000)
    ledger.enter("quantize")
    assert ledger.power(1, 3.0, 200.0) == 550.0
    ledger.counter(0, 3.0, 10_000)
    assert ledger.joules(0) == 5.0 and ledger.joules(1) == 550.0 and ledger.method(1) == POWER
    assert ledger.by_stage == {"prepare": 152.0, "quantize": 403.0}
    assert ledger.total == sum(ledger.by_stage.values()) == 555.0


def test_a_counter_that_goes_backwards_adds_nothing_and_counts_on_from_there():
    ledger = EnergyLedger()
    ledger.counter(0, 0.0, 50_000)
    ledger.counter(0, 1.0, 53_000)
    assert ledger.counter(0, 2.0, 1_000) == 3.0  # a driver reload reset it
    assert ledger.counter(0, 3.0, 4_000) == 6.0
    assert ledger.by_stage == {"job": 6.0}


def test_no_reading_no_energy():
    ledger = EnergyLedger()
    assert ledger.total == 0.0 and ledger.by_stage == {} and ledger.method(0) is None and ledger.joules(0) == 0.0


CUDA_LOOP = """
import time, torch
x = torch.randn(4096, 4096, device="cuda")
torch.cuda.synchronize()
print("ready", flush=True)
end = time.monotonic() + 4
while time.monotonic() < end:
    for _ in range(20):
        y = x @ x
    torch.cuda.synchronize()
print("done", flush=True)
time.sleep(30)
"""


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_nvml_series_and_energy_per_stage_are_real():
    events = []
    sampler = Sampler(interval_s=0.2, emit=events.append)
    sampler.observe({"kind": "stage", "name": "load"})
    sampler.start()
    worker = _spawn(CUDA_LOOP, stdout=subprocess.PIPE)
    try:
        assert worker.stdout.readline() == b"ready\n"
        sampler.observe({"kind": "stage", "name": "matmul"})
        _sample(sampler, worker, ticks=20, interval=0.2)  # the 4 s of matrix products
        assert worker.stdout.readline() == b"done\n"
        sampler.observe({"kind": "stage", "name": "idle"})
        _sample(sampler, worker, ticks=3, interval=0.2)
    finally:
        _end(worker)
    summary = sampler.finish()

    assert summary["nvml"] is True and summary["gpus"][0]["index"] == 0, summary
    names = {e["name"] for e in events if e["kind"] == "resource"}
    assert {f"gpu0/{measure}" for measure in GPU_MEASURES} <= names and JOB_SERIES <= names
    assert max(_series(events, "gpu0/util_percent")) > 50
    assert max(_series(events, "gpu0/memory_mb")) > 64  # the 4096 x 4096 float matrices
    assert max(_series(events, "gpu0/power_w")) > 0 and max(_series(events, "gpu0/sm_clock_mhz")) > 0
    energy = _series(events, "gpu0/energy_j")
    assert energy == sorted(energy) and energy[-1] > 0  # cumulative since the job started
    assert summary["energy_j"] > 0 and summary["gpus"][0]["energy_method"] in (COUNTER, POWER)
    by_stage = summary["energy_by_stage_j"]
    assert by_stage["matmul"] > 0 and by_stage["matmul"] > by_stage.get("idle", 0)
    assert sum(by_stage.values()) == pytest.approx(summary["energy_j"], abs=0.01)
    assert summary["overhead"]["per_tick_ms"] > 0
