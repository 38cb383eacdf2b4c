"""Parallelize: find the fastest way to serve this model on this worker, measured, under an optional p95 budget.

The model itself is not changed: the result is the plan (batch size, threads, memory format, compiled or not) as
`plan.json`, a runnable `serve_plan.py` that serves the saved model with it, and every point measured (chart and
report). The baseline is the model at batch 1 on one thread, eager, measured in the same run.
"""
import copy
import dataclasses
import functools
import itertools
import os
from typing import Any

import torch
from torch import nn

from optimizers.configs.parallelize import ParallelizeConfig
from optimizers.errors import Cancelled, RecipeError, first_line
from optimizers.measure.inference import latency_ms
from optimizers.recipes.parallelize.cuda_plans import (
    FP32,
    STAGES,
    CudaOptions,
    CudaServer,
    parts,
    precision_differences,
    prepared_module,
    staged_variants,
)
from optimizers.recipes.parallelize.replicas import time_replicas
from optimizers.recipes.parallelize.saved_form import CHANNELS_LAST_NOTE, GPU_NOTE, compiled_form
from optimizers.recipes.parallelize.search import Point, Setting, Timing, Unavailable, search
from optimizers.recipes.parallelize.serving import (
    PLAN_FILE,
    SNIPPET_FILE,
    cuda_serving_snippet,
    plan_json,
    serving_snippet,
)
from optimizers.registry import RecipeResult, register
from optimizers.reporters import Reporter

EAGER, CHANNELS_LAST, COMPILED = "eager", "channels_last", "compiled"
PROBE_RUNS = 3
CLEARLY_WORSE = 0.5  # a point whose probe reaches less than half the best throughput is not timed further
ONNX_REFUSED = "ONNX models run in onnxruntime; the plan search measures PyTorch execution"


def parallelize_applies(model: Any) -> tuple[bool, str]:
    if getattr(model, "onnx_path", None) is not None:
        return False, ONNX_REFUSED
    return True, "batch sizes, threads, memory format and compilation are measured on this worker"


@register("parallelize", ParallelizeConfig, applies_to=parallelize_applies)
def parallelize(model: Any, data: Any, config: ParallelizeConfig, report: Reporter, *,
                example: torch.Tensor) -> RecipeResult:
    applies, reason = parallelize_applies(model)
    if not applies:
        raise RecipeError(reason)
    report.stage("plan search")
    device = _search_device(config.device)
    ways = _cuda_ways(model, example, config, device) if device.type == "cuda" else _cpu_ways(model, example, config)
    batches = sorted({1, *config.batch_sizes})
    previous_threads = torch.get_num_threads()
    total = ways.count * len(ways.threads) * len(batches)  # at most: the search skips what cannot win
    numbers = itertools.count(1)

    def on_point(point: Point) -> None:
        index = next(numbers)
        report.metric("plan/throughput_per_s", index, point.throughput)
        report.metric("plan/p95_ms", index, point.timing.p95_ms)
        report.progress(min(index, total), total, "plan search")
        if report.cancelled():
            raise Cancelled()

    try:
        outcome = search(ways.variants, ways.threads, batches, ways.measure, budget_ms=config.p95_budget_ms,
                         seconds=config.search_seconds, on_point=on_point)
    finally:
        torch.set_num_threads(previous_threads)
    baseline = next(p for p in outcome.points if p.setting == Setting(ways.baseline, ways.threads[0], 1))
    if outcome.chosen is None:
        raise RecipeError(f"no point met the p95 budget of {config.p95_budget_ms:g} ms; the fastest batch-1 p95 "
                          f"was {min(p.timing.p95_ms for p in outcome.points):g} ms")
    notes = ways.notes + (_precision_notes(model, example, device, outcome) if device.type == "cuda" else [])
    extras = {**_extras(outcome, baseline, config), "device": _device_name(device)}
    summary = (f"plan: {_describe(outcome.chosen.setting)}: {outcome.chosen.throughput:,.0f} samples/s, p95 "
               f"{outcome.chosen.timing.p95_ms:g} ms per batch; {extras['speedup']:.2f}x the batch-1 "
               f"{'fp32' if device.type == 'cuda' else 'single-thread eager'} baseline "
               f"({baseline.throughput:,.0f} samples/s), {len(outcome.points)} point(s) measured")
    snippet = cuda_serving_snippet if device.type == "cuda" else serving_snippet
    files = {PLAN_FILE: plan_json(extras).encode(), SNIPPET_FILE: snippet(outcome.chosen.setting, example).encode()}
    result_model, form_files, form_notes = _plan_form(model, ways, outcome.chosen.setting, example, device)
    return RecipeResult(model=result_model, backend=f"inference plan search (PyTorch on {extras['device']})",
                        notes=[summary] + notes + form_notes + outcome.notes, extras={"plan_search": extras},
                        extra_files={**files, **form_files})


def _plan_form(model: Any, ways: "_Ways", chosen: Setting, example: torch.Tensor, device: torch.device
               ) -> tuple[Any, dict[str, bytes], list[str]]:
    """The result model and files in the form the plan runs, where that form can be saved (see saved_form)."""
    if device.type == "cuda":
        return model, {}, [GPU_NOTE]
    if chosen.variant == CHANNELS_LAST:
        return ways.modules[CHANNELS_LAST], {}, [CHANNELS_LAST_NOTE]
    if chosen.variant == COMPILED:
        files, notes = compiled_form(model, example)
        return model, files, notes
    return model, {}, []


@dataclasses.dataclass
class _Ways:
    """How the search runs on one device: the ways to try, the thread counts, how a point is timed, the baseline."""
    variants: Any  # a list, or staged_variants bound to its options
    threads: list[int]
    measure: Any
    count: int  # ways at most, for the progress bar
    baseline: str
    notes: list[str]
    modules: dict[str, Any] = dataclasses.field(default_factory=dict)  # CPU: each way's module, by name


def _cpu_ways(model: Any, example: torch.Tensor, config: ParallelizeConfig) -> _Ways:
    layouts, notes = _layouts(config.threads, config.replicas)
    runners, variant_notes = _runners(model, example, config)
    return _Ways(list(runners), layouts, _measure(_cpu_call(runners), config, example), len(runners), EAGER,
                 notes + variant_notes, runners)


def _cuda_ways(model: Any, example: torch.Tensor, config: ParallelizeConfig, device: torch.device) -> _Ways:
    if not isinstance(model, nn.Module):
        raise RecipeError(f"a {type(model).__name__} cannot be moved to the GPU here")
    eager_module = not isinstance(model, torch.jit.ScriptModule)
    options = CudaOptions(half_precision=config.half_precision, bf16=torch.cuda.is_bf16_supported(),
                          channels_last=config.channels_last and example.dim() == 4 and eager_module,
                          compile=config.try_compile and eager_module, graphs=config.cuda_graphs,
                          streams=config.copy_streams)
    cache: dict = {}

    def call(setting: Setting, batch: torch.Tensor) -> tuple[Any, torch.Tensor]:
        module = prepared_module(model, setting.variant, device, cache)
        return CudaServer(module, setting.variant, batch, device), batch

    notes = [] if not config.channels_last or options.channels_last else [
        "channels-last skipped: it needs 4-D float image batches and a module built in Python"]
    variants = functools.partial(staged_variants, budget_ms=config.p95_budget_ms, options=options)
    return _Ways(variants, [torch.get_num_threads()], _measure(call, config, example, FP32), STAGES, FP32, notes)


def _search_device(wanted: str) -> torch.device:
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RecipeError("device cuda was asked for, but this worker has no GPU; use auto or cpu")
    return torch.device("cuda" if wanted != "cpu" and torch.cuda.is_available() else "cpu")


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def _precision_notes(model: Any, example: torch.Tensor, device: torch.device, outcome) -> list[str]:
    tried = sorted({parts(point.setting.variant)[0] for point in outcome.points} - {FP32})
    if not tried:
        return []
    differences = precision_differences(model, example, device, tried)
    return [f"{name} autocast: outputs differ from fp32 by at most {difference:.3g} on the example input"
            for name, difference in differences.items()]


def _layouts(threads: tuple[int, ...], replicas: tuple[int, ...]) -> tuple[list[Any], list[str]]:
    """Thread counts of one process, then (1 thread, N replica processes) layouts, each within the job's cores.

    Replicas come last: a way that cannot run in them (compiled) has had its one-process points by then.
    """
    cores = len(os.sched_getaffinity(0))
    usable = sorted({1, *(count for count in threads if count <= cores)})
    copies = sorted(count for count in replicas if 1 < count <= cores)
    dropped = sorted(count for count in threads if count > cores)
    notes = [f"thread counts {dropped} skipped: this worker gives the job {cores} core(s)"] if dropped else []
    too_many = sorted(count for count in replicas if count > cores)
    notes += [f"replica counts {too_many} skipped: this worker gives the job {cores} core(s)"] if too_many else []
    return usable + [(1, count) for count in copies], notes


def _runners(model: Any, example: torch.Tensor, config: ParallelizeConfig) -> tuple[dict[str, Any], list[str]]:
    """Each way of running the model, on a private copy where the way changes the module; with why others are out."""
    runners, notes = {EAGER: model}, []
    eager_module = isinstance(model, nn.Module) and not isinstance(model, torch.jit.ScriptModule)
    if config.channels_last:
        if example.dim() == 4 and example.is_floating_point() and eager_module:
            runners[CHANNELS_LAST] = copy.deepcopy(model).to(memory_format=torch.channels_last)
        else:
            notes.append("channels-last skipped: it needs 4-D float image batches and a module built in Python")
    if config.try_compile:
        if eager_module:
            runners[COMPILED] = torch.compile(copy.deepcopy(model))
        else:
            notes.append("torch.compile skipped: it compiles modules built in Python or exported graphs, not "
                         "TorchScript")
    return runners, notes


def _cpu_call(runners: dict[str, Any]):
    def call(setting: Setting, batch: torch.Tensor) -> tuple[Any, torch.Tensor]:
        if setting.variant == CHANNELS_LAST:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return runners[setting.variant], batch
    return call


def _measure(make_call, config: ParallelizeConfig, example: torch.Tensor, baseline_way: str = EAGER):
    """Time one point: a short probe, then the full repeats unless the probe is clearly worse than the best so far.

    make_call(setting, batch) -> (what to call, its argument): the CPU's module and batch, or a CudaServer.
    """
    def measure(setting: Setting, best_throughput: float) -> Timing:
        if setting.replicas > 1 and setting.variant == COMPILED:
            raise Unavailable(f"not in {setting.replicas} replica processes (a compiled model is not forked: it "
                              "serves from one process)")
        torch.set_num_threads(setting.threads)
        batch = example.expand(setting.batch, *example.shape[1:]).contiguous()
        try:
            module, batch = make_call(setting, batch)
            if setting.replicas > 1:
                timed = time_replicas(module, batch, setting.replicas, config.repeats, budget_s=30.0)
                return Timing(timed["p50"], timed["p95"], timed["runs"])
            probe = latency_ms(module, batch, repeats=PROBE_RUNS, warmup=1, budget_s=30.0)
            if best_throughput and setting.batch * 1000.0 / probe["p50"] < CLEARLY_WORSE * best_throughput:
                return Timing(probe["p50"], probe["p95"], probe["runs"], stopped_early=True)
            timed = latency_ms(module, batch, repeats=config.repeats, warmup=3, budget_s=30.0)
        except Exception as error:  # noqa: BLE001 - a failed compile or a batch the model refuses
            if setting.variant != baseline_way or setting.replicas > 1:  # the plain model in one process has a plan
                raise Unavailable(f"{_describe(setting)} failed: {first_line(error)}") from error
            raise RecipeError(f"{_describe(setting)} failed: {first_line(error)}") from error
        return Timing(timed["p50"], timed["p95"], timed["runs"])

    return measure


def _describe(setting: Setting) -> str:
    copies = f" in each of {setting.replicas} replica processes" if setting.replicas > 1 else ""
    return f"{setting.variant}, {setting.threads} thread(s){copies}, batch {setting.batch}"


def _extras(outcome, baseline: Point, config: ParallelizeConfig) -> dict[str, Any]:
    return {"plan": outcome.chosen.to_dict(), "baseline": baseline.to_dict(),
            "speedup": round(outcome.chosen.throughput / baseline.throughput, 3) if baseline.throughput else None,
            "p95_budget_ms": config.p95_budget_ms or None, "points": [p.to_dict() for p in outcome.points],
            "not_measured": [vars(s) for s in outcome.not_measured],
            "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__}

