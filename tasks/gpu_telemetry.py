"""GPU readings through NVML for the telemetry sampler.

pynvml is imported lazily: a CPU worker may not have the library (or the driver), and then GPU telemetry is off.
GPUs are numbered as the job sees them (CUDA's numbering under the worker's CUDA_VISIBLE_DEVICES), so
`gpu0/...` is the job's `cuda:0`; NVML's own index is kept alongside.
"""
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from optimizers.errors import first_line

MIB = 1024 * 1024

# measure name -> how to read it; each may be unsupported on some GPUs (MIG slices, older boards).
_MEASURES = {
    "util_percent": lambda nv, h: float(nv.nvmlDeviceGetUtilizationRates(h).gpu),
    "memory_mb": lambda nv, h: nv.nvmlDeviceGetMemoryInfo(h).used / MIB,
    "power_w": lambda nv, h: nv.nvmlDeviceGetPowerUsage(h) / 1000.0,
    "temperature_c": lambda nv, h: float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
    "sm_clock_mhz": lambda nv, h: float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)),
}


class NvmlUnavailable(Exception):
    """NVML is missing or would not start; the message says why."""


@dataclass
class Gpu:
    index: int
    nvml_index: int | None
    name: str
    memory_mb: float
    handle: object
    has_energy_counter: bool
    has_power: bool
    unsupported: set[str] = field(default_factory=set)


class GpuProbe:
    """The GPUs a job uses, opened once; readings never raise (a failed one is left out)."""

    def __init__(self, visible_devices: str | None):
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as error:  # noqa: BLE001 - ImportError, NVMLError_LibraryNotFound, a driver mismatch...
            raise NvmlUnavailable(first_line(error)) from error
        self._nv = pynvml
        try:
            self.gpus = [self._open(i, handle) for i, handle in enumerate(_handles(pynvml, visible_devices))]
        except pynvml.NVMLError as error:
            self.close()
            raise NvmlUnavailable(first_line(error)) from error

    def _open(self, index: int, handle) -> Gpu:
        nv = self._nv
        name = nv.nvmlDeviceGetName(handle)
        nvml_index = None
        with contextlib.suppress(nv.NVMLError):
            nvml_index = nv.nvmlDeviceGetIndex(handle)
        return Gpu(index=index, nvml_index=nvml_index, name=_text(name),
                   memory_mb=round(nv.nvmlDeviceGetMemoryInfo(handle).total / MIB), handle=handle,
                   has_energy_counter=self.energy_mj_of(handle) is not None,
                   has_power=self._power_w_of(handle) is not None)

    def energy_mj_of(self, handle) -> float | None:
        try:
            return float(self._nv.nvmlDeviceGetTotalEnergyConsumption(handle))
        except self._nv.NVMLError:
            return None

    def read(self, gpu: Gpu) -> dict[str, float]:
        values = {}
        for name, reader in _MEASURES.items():
            if name in gpu.unsupported:
                continue
            try:
                values[name] = reader(self._nv, gpu.handle)
            except self._nv.NVMLError_NotSupported:
                gpu.unsupported.add(name)  # asking again every tick would only cost time
            except self._nv.NVMLError:
                pass  # a transient failure: this tick goes without it
        return values

    def power_w(self, gpu: Gpu) -> float | None:
        return self._power_w_of(gpu.handle) if gpu.has_power else None

    def _power_w_of(self, handle) -> float | None:
        with contextlib.suppress(self._nv.NVMLError):
            return self._nv.nvmlDeviceGetPowerUsage(handle) / 1000.0
        return None

    def free_memory_mb(self, gpu: Gpu) -> float:
        return self._nv.nvmlDeviceGetMemoryInfo(gpu.handle).free / MIB

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._nv.nvmlShutdown()


def visible_indices(visible_devices: str | None, uuids: list[str]) -> list[int | str]:
    """NVML indices of the GPUs CUDA would show a process, in CUDA's order (a MIG entry stays its UUID).

    `uuids` are the machine's GPU UUIDs in NVML order. Entries are indices, unique prefixes of `GPU-` UUIDs or
    `MIG-` UUIDs; CUDA ignores an invalid entry and every entry after it, and so does this.
    """
    if visible_devices is None:
        return list(range(len(uuids)))
    order: list[int | str] = []
    for entry in (part.strip() for part in visible_devices.split(",")):
        if entry.startswith("MIG-"):
            order.append(entry)
            continue
        index = _index_of(entry, uuids)
        if index is None:
            break
        order.append(index)
    return order


def _index_of(entry: str, uuids: list[str]) -> int | None:
    if entry.isdigit():
        return int(entry) if int(entry) < len(uuids) else None
    if entry.startswith("GPU-"):
        return next((i for i, uuid in enumerate(uuids) if uuid.startswith(entry)), None)
    return None


def _handles(nv, visible_devices: str | None) -> list:
    """NVML handles of the devices CUDA would show the job, in CUDA's order."""
    by_index = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
    uuids = [_text(nv.nvmlDeviceGetUUID(handle)) for handle in by_index]
    handles = []
    for item in visible_indices(visible_devices, uuids):
        if isinstance(item, int):
            handles.append(by_index[item])
            continue
        try:
            handles.append(nv.nvmlDeviceGetHandleByUUID(item))
        except nv.NVMLError:
            break
    return handles


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _each_gpu(visible_devices: str | None, read: Callable[[GpuProbe, Gpu], object]) -> list:
    """`read` of each GPU a process may use, through a probe opened for it; [] without NVML (a CPU worker)."""
    try:
        probe = GpuProbe(visible_devices)
    except NvmlUnavailable:
        return []
    try:
        return [read(probe, gpu) for gpu in probe.gpus]
    finally:
        probe.close()


def gpu_devices(visible_devices: str | None) -> list[dict]:
    """The GPUs a process may use, as the workers page lists them."""
    return _each_gpu(visible_devices, lambda probe, gpu: {"index": gpu.index, "nvml_index": gpu.nvml_index,
                                                          "name": gpu.name, "memory_mb": gpu.memory_mb})


def gpu_free_memory_mb(visible_devices: str | None) -> list[float]:
    """Free memory of each GPU a process may use, now."""
    return _each_gpu(visible_devices, GpuProbe.free_memory_mb)
