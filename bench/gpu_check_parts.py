"""bench/gpu_check.py's shared pieces: how big each check runs, the report's rows, measuring a model on the check's
device (the shared report, and NVML's energy counter), and NVML telemetry sampled during a job.

Imported by gpu_check.py after it has put the repository's root on sys.path; PyTorch-only, like the rest of it.
"""
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from bench.parallelize_gpu import BATCH, RESNET18
from optimizers.data.splits import DataSplits
from optimizers.errors import first_line
from optimizers.measure.meters import EnergyCounter, energy_j_per_1000
from optimizers.measure.report import measure_model

NO_CUDA = "skipped: no CUDA"
TELEMETRY_EVERY_S = 0.5
TELEMETRY_MEASURES = ("power_w", "temperature_c", "util_percent", "memory_mb", "energy_mj")
CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each check runs: the full GPU check, or --quick (a smoke test of the logic, on any device)."""
    quantize_mlp: dict  # zoo MLP settings
    measure_batch: int
    measure_s: float  # measure_model's time budget per model
    prune_hidden: int  # width of the 2:4 MLP (kernel-friendly: a multiple of 64)
    bert: dict  # transformers.BertConfig settings of the 2:4 transformer
    bert_tokens: int
    train_samples: int
    epochs: int
    resnet: dict  # the parallelize model (zoo ResNet settings)
    parallel_batch: int
    search_s: float
    energy_s: float


FULL = Sizes(quantize_mlp={"in_features": 4096, "hidden": [4096, 4096], "num_classes": 1024}, measure_batch=BATCH,
             measure_s=6.0, prune_hidden=4096,
             bert={"hidden_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8, "intermediate_size": 2048},
             bert_tokens=64, train_samples=2048, epochs=1,
             resnet=RESNET18, parallel_batch=BATCH, search_s=100.0, energy_s=3.0)
QUICK = Sizes(quantize_mlp={"in_features": 64, "hidden": [128], "num_classes": 16}, measure_batch=8,
              measure_s=1.0, prune_hidden=128,
              bert={"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 128},
              bert_tokens=16, train_samples=256, epochs=1,
              resnet={"block": "basic", "layers": [1, 1, 1, 1], "width": 0.25, "small_input": True, "in_channels": 3,
                      "image_size": 16, "num_classes": 10},
              parallel_batch=16, search_s=5.0, energy_s=1.0)


@dataclasses.dataclass
class Row:
    """One line of the report: what ran, how it ended, its figures, and the issue's target where it has one."""
    check: str
    status: str = "ok"  # ok | skipped: <why> | refused: <why> | failed: <error>
    figures: dict = dataclasses.field(default_factory=dict)
    note: str | None = None
    target: str | None = None
    met: bool | None = None


@dataclasses.dataclass
class Context:
    device: torch.device
    sizes: Sizes
    quick: bool
    folder: Path  # scratch files of this run
    rows: list[Row] = dataclasses.field(default_factory=list)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


# --- shared pieces -------------------------------------------------------------------------------------------------

def synthetic_splits(features: int, samples: int, seed: int = 0) -> DataSplits:
    """Labels a linear rule gives Gaussian features: learnable, and no dataset package needed."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, features, generator=generator)
    y = (x @ torch.randn(features, CLASSES, generator=generator)).argmax(dim=1)
    cut = samples * 4 // 5
    return DataSplits(x[:cut], y[:cut], x[cut:], y[cut:], class_names=[str(c) for c in range(CLASSES)])


def measured(model: Any, example: torch.Tensor, ctx: Context, reference: torch.Tensor | None = None,
             splits: DataSplits | None = None) -> dict:
    """The shared report's figures of `model` on the check's device (size: its state dict, saved with torch.save);
    fidelity against `reference`, the original's outputs on the validation split of `splits` (else the example)."""
    path = ctx.folder / "weights.pt"
    try:
        torch.save(model.state_dict(), path)
        size_note = None
    except Exception as error:  # noqa: BLE001 - a tensor subclass torch.save cannot write: the rest is still measured
        path.write_bytes(b"")
        size_note = f"size not measured: torch.save of the state dict failed ({first_line(error)})"
    report = measure_model(model, example, path, splits=splits, reference=reference, batch=ctx.sizes.measure_batch,
                           time_budget_s=ctx.sizes.measure_s)
    figures = summary(report)
    if size_note:
        figures.update(size_bytes=None, size_note=size_note)
    return figures


def summary(report: dict) -> dict:
    """The figures of a measure_model report this check keeps: the table's, and fidelity and size."""
    batch = report["throughput_batch"]
    at_batch = report["latency_ms"].get(f"batch_{batch}") or report["latency_ms"]["batch_1"]
    return {"batch": batch, "p50_ms": at_batch["p50"], "p95_ms": at_batch["p95"],
            "throughput_per_s": report["throughput_per_s"], "peak_memory_mb": report["peak_memory_mb"],
            "energy_j_per_1000": report["energy_j_per_1000"], "energy_note": report["energy_note"],
            "size_bytes": report["size_bytes"], "output_error": report["output_error"],
            "agreement_top1": report["agreement_top1"], "device": report["device"]}


def energy_per_1000(serve: Callable[[], Any], samples_per_call: int, device: torch.device, seconds: float
                    ) -> tuple[float | None, str]:
    """Joules per 1,000 samples from NVML's total-energy counter over about `seconds` of calls, and what it means."""
    try:
        counter = EnergyCounter(device)
    except RuntimeError as error:
        return None, str(error)
    try:
        serve()
        torch.cuda.synchronize(device)
        start, calls, deadline = counter.read(), 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            serve()
            calls += 1
        torch.cuda.synchronize(device)
        end = counter.read()
    finally:
        counter.close()
    return energy_j_per_1000(start, end, calls * samples_per_call), (
        f"whole-GPU energy (NVML counter) over {calls * samples_per_call} samples in batches of {samples_per_call}")


class TelemetrySampler(threading.Thread):
    """Reads every GPU through the worker's own NVML probe (tasks/gpu_telemetry.py) every TELEMETRY_EVERY_S."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="gpu-check-telemetry")
        from tasks.gpu_telemetry import GpuProbe

        self.probe = GpuProbe(os.environ.get("CUDA_VISIBLE_DEVICES"))  # NvmlUnavailable says why not
        self.samples: list[dict] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            reading: dict[str, Any] = {"t": time.perf_counter()}
            for gpu in self.probe.gpus:
                values = self.probe.read(gpu)
                energy = self.probe.energy_mj_of(gpu.handle)
                if energy is not None:
                    values["energy_mj"] = energy
                reading[f"gpu{gpu.index}"] = values
            self.samples.append(reading)
            self.done.wait(TELEMETRY_EVERY_S)

    def stop(self) -> None:
        self.done.set()
        self.join()
        self.probe.close()

    def figures(self) -> dict:
        times = [sample["t"] for sample in self.samples]
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        first = self.samples[0].get("gpu0", {}) if self.samples else {}
        series = {name: [sample["gpu0"][name] for sample in self.samples if name in sample.get("gpu0", {})]
                  for name in TELEMETRY_MEASURES}
        present = {name: bool(values) for name, values in series.items()}
        ranges = {name: [round(min(values), 1), round(max(values), 1)] for name, values in series.items() if values}
        energy = series["energy_mj"]
        return {"samples": len(self.samples), "max_interval_s": round(max(gaps), 3) if gaps else None,
                "present": present, "min_max": ranges, "gpus": len(self.probe.gpus), "first_reading": first,
                "energy_j": round((energy[-1] - energy[0]) / 1000, 1) if len(energy) > 1 else None}


@contextmanager
def telemetry(ctx: Context, job: str) -> Iterator[None]:
    """Sample NVML during one job and add the telemetry target's row."""
    row = Row(f"target: NVML telemetry during {job}", target="power, temperature, utilization, memory and energy "
              "each sampled at <= 1 s intervals")
    ctx.rows.append(row)
    sampler = None
    if not ctx.cuda:
        row.status = NO_CUDA
    else:
        try:
            sampler = TelemetrySampler()
        except Exception as error:  # noqa: BLE001 - NvmlUnavailable, or pynvml not installed
            row.status = f"skipped: NVML is not available ({first_line(error)})"
    if sampler is not None:
        sampler.start()
    try:
        yield
    finally:
        if sampler is not None:
            sampler.stop()
            row.figures = sampler.figures()
            interval = row.figures["max_interval_s"]
            row.met = all(row.figures["present"].values()) and interval is not None and interval <= 1.0
            missing = [name for name, there in row.figures["present"].items() if not there]
            row.note = (f"{row.figures['samples']} readings, largest gap {interval} s"
                        + (f"; missing: {', '.join(missing)}" if missing else ""))
