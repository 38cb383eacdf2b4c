"""Energy per GPU and per job stage, from readings alone (no NVML here, so it is tested with plain numbers).

Each reading closes an interval that ended at its time; the energy of that interval goes to the stage current
when the reading is taken. The sampler therefore takes a reading right before it switches the stage.
"""
from dataclasses import dataclass

COUNTER = "counter"  # NVML's total energy counter (mJ): exact, whatever happened between readings
POWER = "power_integration"  # a GPU without the counter: power (W) integrated over time, trapezoid rule


@dataclass
class _Gpu:
    method: str
    last_t: float
    last_value: float
    joules: float = 0.0


class EnergyLedger:
    def __init__(self, stage: str = "job"):
        self.stage = stage
        self._gpus: dict[int, _Gpu] = {}
        self._by_stage: dict[str, float] = {}

    def enter(self, stage: str) -> None:
        self.stage = stage

    def counter(self, gpu: int, t: float, mj: float) -> float:
        """A reading of the energy counter (millijoules); returns the GPU's joules so far."""
        return self._add(gpu, COUNTER, t, mj, lambda last: max(0.0, mj - last.last_value) / 1000.0)

    def power(self, gpu: int, t: float, watts: float) -> float:
        """A power reading (watts); returns the GPU's joules so far."""
        return self._add(gpu, POWER, t, watts,
                         lambda last: (last.last_value + watts) / 2.0 * max(0.0, t - last.last_t))

    def _add(self, gpu: int, method: str, t: float, value: float, delta_of) -> float:
        last = self._gpus.get(gpu)
        if last is None or last.method != method:
            # The first reading is the baseline: energy counts from the job's start, not the GPU's boot.
            # A counter that goes backwards (driver reload) adds nothing (max(0, ...)) and is the new baseline.
            self._gpus[gpu] = last = _Gpu(method, t, value, last.joules if last else 0.0)
            return last.joules
        delta = delta_of(last)
        last.joules += delta
        last.last_t, last.last_value = t, value
        self._by_stage[self.stage] = self._by_stage.get(self.stage, 0.0) + delta
        return last.joules

    def joules(self, gpu: int) -> float:
        return self._gpus[gpu].joules if gpu in self._gpus else 0.0

    def method(self, gpu: int) -> str | None:
        return self._gpus[gpu].method if gpu in self._gpus else None

    @property
    def total(self) -> float:
        return sum(g.joules for g in self._gpus.values())

    @property
    def by_stage(self) -> dict[str, float]:
        return dict(self._by_stage)
