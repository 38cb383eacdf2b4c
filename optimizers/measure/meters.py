"""Peak memory and GPU energy around a stretch of inference, without third-party packages.

Peak RSS is sampled from /proc/self/statm by a background thread (psutil is not installed on
every worker). On CUDA, PyTorch's own allocator statistics are exact and used instead. Energy
comes from NVML's total-energy counter (millijoules since the driver loaded), read before and
after a timed loop; pynvml is imported lazily because CPU workers may not have it.
"""

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from optimizers.errors import first_line

_STATM = "/proc/self/statm"
_SAMPLE_EVERY_S = 0.005
_MB = 1024 * 1024


@dataclass
class PeakMemory:
    """Filled in when the `peak_memory` block ends: the increase in MB (or None) and what it means."""

    mb: float | None = None
    note: str | None = None


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[PeakMemory]:
    """Measure the peak memory increase of the code inside the block."""
    result = PeakMemory()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result.mb = round((torch.cuda.max_memory_allocated(device) - start) / _MB, 3)
        result.note = "peak CUDA memory PyTorch allocated above the weights already loaded (max_memory_allocated)"
        return
    if not os.path.exists(_STATM):
        yield result
        result.note = f"peak memory is measured from {_STATM}, which this system does not have"
        return
    _return_freed_memory_to_the_os()  # else earlier freed memory is reused unseen and the peak reads 0
    sampler = _RssSampler()
    sampler.start()
    sampler.baseline = sampler.peak = sampler.read()  # after start: the thread's own stack is not the model's
    try:
        yield result
    finally:
        sampler.stop()
    result.mb = round(max(0, sampler.peak - sampler.baseline) / _MB, 3)
    result.note = (f"peak increase of the process's resident memory (RSS, sampled every "
                   f"{_SAMPLE_EVERY_S * 1000:.0f} ms) above the weights already loaded")


class _RssSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True, name="slimforge-rss-sampler")
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        self.baseline = self.peak = 0
        self.done = threading.Event()

    def read(self) -> int:
        with open(_STATM, encoding="ascii") as statm:
            return int(statm.read().split()[1]) * self.page_size  # second field: resident pages

    def run(self) -> None:
        while not self.done.wait(_SAMPLE_EVERY_S):
            self.peak = max(self.peak, self.read())

    def stop(self) -> None:
        self.done.set()
        self.join()
        self.peak = max(self.peak, self.read())


def _return_freed_memory_to_the_os() -> None:
    with contextlib.suppress(OSError, AttributeError):  # glibc only; elsewhere the peak may read low
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def energy_j_per_1000(start_mj: int, end_mj: int, inferences: int) -> float | None:
    """Joules per 1,000 inferences from two readings of NVML's energy counter (millijoules)."""
    if inferences <= 0 or end_mj < start_mj:  # a counter reset (driver reload) makes the figure meaningless
        return None
    return round((end_mj - start_mj) / 1000.0 / inferences * 1000.0, 6)


class EnergyCounter:
    """NVML's total energy counter of the GPU that `device` names; raises RuntimeError when unavailable."""

    def __init__(self, device: torch.device) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = _nvml_handle(pynvml, device)
            self.read()  # fails here, not mid-measurement, on GPUs without the counter (MIG slices, say)
        except Exception as error:  # noqa: BLE001 - ImportError, NVMLError, a missing driver...
            raise RuntimeError(f"NVML's energy counter is not available: {first_line(error)}") from error

    def read(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()


def _nvml_handle(pynvml, device: torch.device):
    """NVML numbers GPUs differently from CUDA when CUDA_VISIBLE_DEVICES is set; the UUID is shared."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        text = str(uuid)
        with contextlib.suppress(Exception):
            return pynvml.nvmlDeviceGetHandleByUUID(text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}")
    return pynvml.nvmlDeviceGetHandleByIndex(index)
