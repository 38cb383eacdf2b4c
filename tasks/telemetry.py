"""The job telemetry sampler: CPU, memory and GPU readings every interval, energy per stage, and its own cost.

Call order: `observe` sees every event of the job (it follows the stage), `start` when the job starts,
`tick(process)` each interval with the job's process, `finish` at the end for `summary["telemetry"]`.
Resource events (optimizers.events) are named job/..., host/..., gpu{i}/..., as the charts group them.
"""
import os
import time
from collections.abc import Callable
from contextlib import contextmanager

import psutil

from optimizers.events import Event, log_event, resource_event, stage_of
from tasks.energy import EnergyLedger
from tasks.gpu_telemetry import Gpu, GpuProbe, NvmlUnavailable
from tasks.process_tree import MIB, ProcessTree

_FROM_ENVIRONMENT = object()


class Sampler:
    def __init__(self, *, interval_s: float, emit: Callable[[Event], None], visible_devices=_FROM_ENVIRONMENT):
        self.interval_s = interval_s
        self.samples = 0
        self._emit = emit
        self._visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible_devices is _FROM_ENVIRONMENT \
            else visible_devices
        self._ledger = EnergyLedger()
        self._tree = ProcessTree()
        self._cost = _Cost()
        self._probe: GpuProbe | None = None
        self._note = ""
        self._started = time.monotonic()

    def observe(self, record: Event) -> None:
        """Follows the job's stage from its events, so energy is attributed to the stage that used it."""
        stage = stage_of(record)
        if not stage or stage == self._ledger.stage:
            return
        with self._cost.measure():
            if self._probe:
                self._read_energy()  # closes the old stage's interval at the moment of the switch
            self._ledger.enter(stage)

    def start(self) -> None:
        with self._cost.measure():
            self._started = time.monotonic()
            self._probe, self._note = _open_gpus(self._visible)
            if self._probe:
                self._read_energy()  # the baseline: energy counts from here
        self._emit(log_event(self._note))

    def tick(self, process: psutil.Process) -> None:
        with self._cost.measure(tick=True):
            self._sample_job(process)
            self._sample_host()
            for gpu in self._probe.gpus if self._probe else ():
                self._sample_gpu(gpu)
            self.samples += 1

    def finish(self) -> dict:
        with self._cost.measure():
            if self._probe:
                self._read_energy()
                self._probe.close()
        summary = self._summary(time.monotonic() - self._started)
        self._emit(log_event(_closing_line(summary)))
        return summary

    def _sample_job(self, process: psutil.Process) -> None:
        try:
            cpu_percent, rss_mb = self._tree.read(process)
        except psutil.Error:
            return  # the job's process is exiting: no reading rather than a wrong one
        self._resource("job/cpu_percent", cpu_percent)
        self._resource("job/rss_mb", rss_mb)

    def _sample_host(self) -> None:
        memory = psutil.virtual_memory()
        self._resource("host/memory_percent", memory.percent)
        self._resource("host/memory_used_mb", (memory.total - memory.available) / MIB)

    def _sample_gpu(self, gpu: Gpu) -> None:
        values = self._probe.read(gpu)
        values["energy_j"] = self._energy_of(gpu, values.get("power_w"))
        for name, value in values.items():
            if value is not None:
                self._resource(f"gpu{gpu.index}/{name}", value, digits=3 if name == "energy_j" else 1)

    def _read_energy(self) -> None:
        for gpu in self._probe.gpus:
            self._energy_of(gpu, None if gpu.has_energy_counter else self._probe.power_w(gpu))

    def _energy_of(self, gpu: Gpu, power_w: float | None) -> float | None:
        now = time.monotonic()
        if gpu.has_energy_counter:
            mj = self._probe.energy_mj_of(gpu.handle)
            return self._ledger.counter(gpu.index, now, mj) if mj is not None else self._ledger.joules(gpu.index)
        if power_w is not None:
            return self._ledger.power(gpu.index, now, power_w)
        return self._ledger.joules(gpu.index) if self._ledger.method(gpu.index) else None

    def _resource(self, name: str, value: float, digits: int = 1) -> None:
        self._emit(resource_event(name, value, digits))

    def _summary(self, job_wall_s: float) -> dict:
        ledger = self._ledger
        gpus = [{"index": g.index, "nvml_index": g.nvml_index, "name": g.name, "memory_mb": g.memory_mb,
                 "energy_j": round(ledger.joules(g.index), 3) if ledger.method(g.index) else None,
                 "energy_method": ledger.method(g.index)} for g in (self._probe.gpus if self._probe else [])]
        return {"interval_s": self.interval_s, "samples": self.samples, "nvml": self._probe is not None,
                "note": self._note, "gpus": gpus,
                "energy_j": round(ledger.total, 3) if self._probe else None,
                "energy_by_stage_j": {stage: round(j, 3) for stage, j in ledger.by_stage.items()},
                "overhead": self._cost.summary(job_wall_s)}


def _open_gpus(visible: str | None) -> tuple[GpuProbe | None, str]:
    try:
        probe = GpuProbe(visible)
    except NvmlUnavailable as why:
        return None, f"GPU telemetry off: NVML not available ({why}); reporting CPU and memory only."
    if not probe.gpus:
        probe.close()
        return None, (f"GPU telemetry off: no GPU is visible to the job (CUDA_VISIBLE_DEVICES={visible!r}); "
                      "reporting CPU and memory only.")
    return probe, _gpu_note(probe.gpus)


def _gpu_note(gpus: list[Gpu]) -> str:
    lines = [f"GPU telemetry through NVML on {len(gpus)} GPU(s): "
             + ", ".join(f"gpu{g.index} {g.name}" for g in gpus) + "."]
    for gpu in gpus:
        if not gpu.has_energy_counter and not gpu.has_power:
            lines.append(f"gpu{gpu.index} has neither an energy counter nor a power reading; its energy is unknown.")
        elif not gpu.has_energy_counter:
            lines.append(f"gpu{gpu.index} has no energy counter; its energy is its power integrated over time.")
    return " ".join(lines)


def _closing_line(summary: dict) -> str:
    cost = summary["overhead"]
    per_tick = f"{cost['per_tick_ms']:.2f} ms per sample" if cost["per_tick_ms"] is not None else "no samples"
    parts = [f"Telemetry: {summary['samples']} samples every {summary['interval_s']:g} s"]
    if summary["energy_j"] is None:
        parts.append("CPU and memory only (no GPU telemetry)")
    else:
        stages = ", ".join(f"{stage} {j:.1f} J" for stage, j in summary["energy_by_stage_j"].items())
        parts.append(f"GPU energy {summary['energy_j']:.1f} J ({stages or 'no stage'})")
    parts.append(f"sampler cost {per_tick}, {100 * (cost['fraction'] or 0):.3f}% of the job's wall time")
    return "; ".join(parts) + "."


class _Cost:
    """What the sampler itself costs: wall time spent in it and the worker process's CPU time meanwhile."""

    def __init__(self):
        self.ticks = 0
        self.tick_wall_s = self.max_tick_s = self.wall_s = self.cpu_s = 0.0

    @contextmanager
    def measure(self, tick: bool = False):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            spent = time.perf_counter() - wall
            self.wall_s += spent
            self.cpu_s += time.process_time() - cpu
            if tick:
                self.ticks += 1
                self.tick_wall_s += spent
                self.max_tick_s = max(self.max_tick_s, spent)

    def summary(self, job_wall_s: float) -> dict:
        def share(seconds):
            return round(seconds / job_wall_s, 6) if job_wall_s > 0 else None

        return {"ticks": self.ticks, "wall_s": round(self.wall_s, 4), "cpu_s": round(self.cpu_s, 4),
                "job_wall_s": round(job_wall_s, 3), "fraction": share(self.wall_s), "cpu_fraction": share(self.cpu_s),
                "per_tick_ms": round(1000 * self.tick_wall_s / self.ticks, 3) if self.ticks else None,
                "max_tick_ms": round(1000 * self.max_tick_s, 3) if self.ticks else None}
