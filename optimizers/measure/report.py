"""The before/after report every recipe shares: the same figures of the original and the result, on the same
inputs (docs/architecture.md, "The path of one job").

`measure_model` takes the same figures of any model Slimforge loads: nn.Module, TorchScript,
torch.export graph modules and ONNX models (through plain calls). The job computes the original
model's outputs once with `reference_outputs` and passes them to both measurements, so fidelity
is always judged against the original on the very same inputs. Every figure that cannot be
taken is None with a "*_note" saying why; the dict is JSON-ready (no NaN or infinity).
"""

import math
import time
from typing import Any

import torch

from optimizers.errors import first_line
from optimizers.measure import fidelity, language
from optimizers.measure import inference as measure
from optimizers.measure.macs import count_macs
from optimizers.measure.meters import EnergyCounter, energy_j_per_1000, peak_memory

# Shares of `time_budget_s` per stage; MACs and parameter counts are single cheap passes.
_LATENCY_SHARE, _EVAL_SHARE, _ENERGY_SHARE, _LANGUAGE_SHARE = 0.3, 0.25, 0.15, 0.5
PROMPT_TOKENS, GENERATED_TOKENS, GENERATION_BATCH = 32, 16, 8
LANGUAGE_MODEL, EMBEDDINGS = "language_model", "embeddings"  # measure_model's tasks
MIN_ENERGY_LOOP_S = 1.0  # NVML's counter moves in steps of tens of milliseconds: shorter loops read noise


def reference_outputs(model: Any, example: torch.Tensor, splits: Any = None, *, time_budget_s: float = 30.0
                      ) -> torch.Tensor | None:
    """The original model's outputs on the evaluation inputs, for `measure_model(reference=...)`."""
    inputs = fidelity.evaluation_inputs(example, splits)
    return fidelity.model_outputs(model, inputs, static_batch=_batch_of(example),
                                  budget_s=_EVAL_SHARE * time_budget_s).values


def pooled_reference(reference: torch.Tensor, example: torch.Tensor, splits: Any, pad: int | None) -> torch.Tensor:
    """`reference_outputs`' token outputs [N, L, H] mean-pooled over their inputs' unpadded positions, to compare
    with a result that tokenizes the same texts its own way (`measure_model(pooled_pad=...)`)."""
    inputs = fidelity.evaluation_inputs(example, splits)
    return fidelity.mean_pooled(reference, inputs.fit(inputs.x[:len(reference)]), pad)


def measure_model(model: Any, example: torch.Tensor, path: Any, *, splits: Any = None,
                  reference: torch.Tensor | None = None, batch: int = 32, time_budget_s: float = 30.0,
                  task: str | None = None, pooled_pad: int | None | bool = False) -> dict[str, Any]:
    """Size, weights, MACs, latency, throughput, memory, accuracy, fidelity and energy of one model.

    `task` (what the job's original model is, which a saved result no longer says): LANGUAGE_MODEL adds perplexity
    and generation speed; EMBEDDINGS leaves out top-1 agreement, which means nothing for an embedding's largest
    coordinate (the mean cosine judges those). `pooled_pad` (False: compare as they are): the model's token outputs
    [N, L, H] are mean-pooled over the positions whose id is not this pad id (None: every position) before they are
    compared with a reference pooled alike (`pooled_reference`): a result with a tokenizer of its own splits the same
    texts into other positions."""
    device = example.device
    params, nonzero = _parameter_counts(model)
    macs, macs_note = count_macs(model, example)
    report: dict[str, Any] = {
        "size_bytes": measure.file_size(path), "params": params, "nonzero_params": nonzero,
        "macs": macs, "macs_note": macs_note,
        "threads": torch.get_num_threads(), "device": _device_name(device),
    }
    speed, largest_input = _speed(model, example, batch, _LATENCY_SHARE * time_budget_s)
    report.update(speed)
    report.update(_energy(model, largest_input, device, _ENERGY_SHARE * time_budget_s))
    report.update(_quality(model, example, splits, reference, _EVAL_SHARE * time_budget_s, pooled_pad))
    if task == EMBEDDINGS and report["agreement_top1"] is not None:
        report["agreement_top1"] = None
    if task == LANGUAGE_MODEL:
        report.update(language_figures(model, example, splits, _LANGUAGE_SHARE * time_budget_s))
    return report


def language_figures(model: Any, example: torch.Tensor, splits: Any, budget_s: float) -> dict[str, Any]:
    """Perplexity on the validation split's blocks of text, and time to first token and greedy tokens per second
    at batch 1 and GENERATION_BATCH, prompted with the start of the first validation block (else the example)."""
    ids = getattr(splits, "val_x", None)
    usable = ids is not None and ids.dim() == 2 and not ids.is_floating_point() and len(ids) > 0
    figures: dict[str, Any] = {"perplexity": None, "perplexity_tokens": 0,
                               "perplexity_note": None if usable else "perplexity is measured on a text dataset's "
                                                                      "validation split; this job has none"}
    if usable:
        found = language.perplexity(model, ids, budget_s=budget_s)
        figures.update(perplexity=_finite_or_none(found.value), perplexity_tokens=found.tokens,
                       perplexity_note=found.note)
    prompt = (ids[0] if usable else example.reshape(-1))[:PROMPT_TOKENS]
    try:
        speed = language.generation_speed(model, prompt, GENERATED_TOKENS, GENERATION_BATCH)
    except Exception as error:  # noqa: BLE001 - a model fixed to one input shape cannot grow a sequence
        figures.update(generation=None, generation_note=f"generation was not measured: {first_line(error)}")
        return figures
    figures.update(generation={
        "prompt_tokens": speed.prompt_tokens, "new_tokens": speed.new_tokens,
        "time_to_first_token_ms": speed.time_to_first_token_ms,
        "tokens_per_s": {f"batch_{size}": value for size, value in speed.tokens_per_s.items()},
        "continuation": speed.continuation}, generation_note=(
        f"greedy decoding of {speed.new_tokens} tokens after a {speed.prompt_tokens}-token prompt; the saved model "
        "recomputes the whole sequence for every token (no key-value cache)"))
    return figures


def _finite_or_none(value: float | None) -> float | None:
    return round(value, 4) if value is not None and math.isfinite(value) else None


def _speed(model: Any, example: torch.Tensor, batch: int, budget_s: float) -> tuple[dict[str, Any], torch.Tensor]:
    """Latency at batch 1 and `batch`, throughput, the peak memory of the larger batch, and that batch.

    Each size runs once before its memory is watched: first-call set-up (kernel selection, caches
    that stay) is not the memory a call needs.
    """
    measure.run_model(model, example)
    with peak_memory(example.device) as memory:
        single = _latency(model, example, budget_s)
    batched, note = _batched(example, batch)
    # Worst case, a call's time grows with the batch; 4 calls (warm-up + 3 timed) must roughly fit the budget.
    if batched is not None and 4 * batch * single["p50"] / 1000.0 > 2 * budget_s:
        batched, note = None, (f"batch {batch} was not measured: one call at batch 1 takes {single['p50']:.0f} ms, "
                               "so it would not fit the time budget")
    multi = None
    if batched is not None:
        try:
            measure.run_model(model, batched)
            with peak_memory(example.device) as memory_batched:
                multi = _latency(model, batched, budget_s)
            memory = memory_batched
        except Exception as error:  # noqa: BLE001 - a static batch in an exported program or ONNX graph
            note = f"the model does not take a batch of {batch}: {first_line(error)}"
    timed, samples = (multi, batch) if multi else (single, _batch_of(example))
    figures = {
        "latency_ms": {"batch_1": single, f"batch_{batch}": multi}, "latency_note": note,
        "latency_ms_p50": single["p50"], "latency_ms_p95": single["p95"],  # the page's first columns
        "throughput_per_s": round(samples * 1000.0 / timed["p50"], 3) if timed["p50"] > 0 else None,
        "throughput_batch": samples,
        "peak_memory_mb": memory.mb,
        "memory_note": memory.note if memory.mb is None else f"{memory.note}, while running batch {samples}",
    }
    return figures, (batched if multi else example)


def _latency(model: Any, inputs: torch.Tensor, budget_s: float) -> dict[str, Any]:
    # 100 runs give a steady p95 for fast models; the budget stops slow ones after 3.
    timings = measure.latency_ms(model, inputs, repeats=100, warmup=5, budget_s=budget_s)
    return {"p50": timings["p50"], "p95": timings["p95"], "runs": timings["runs"]}


def _batched(example: torch.Tensor, batch: int) -> tuple[torch.Tensor | None, str | None]:
    if example.dim() == 0 or example.shape[0] != 1:
        shape = list(example.shape)
        return None, f"batch {batch} is measured by repeating a batch-1 example; the example's shape is {shape}"
    return example.expand(batch, *example.shape[1:]).contiguous(), None


def _energy(model: Any, inputs: torch.Tensor, device: torch.device, budget_s: float) -> dict[str, Any]:
    if device.type != "cuda":
        return {"energy_j_per_1000": None, "energy_note": "energy is measured on CUDA GPUs only (NVML)"}
    try:
        counter = EnergyCounter(device)
    except RuntimeError as error:
        return {"energy_j_per_1000": None, "energy_note": str(error)}
    try:
        runs = _timed_loop(model, inputs, device, counter, max(budget_s, MIN_ENERGY_LOOP_S))
    finally:
        counter.close()
    start_mj, end_mj, calls = runs
    samples = calls * _batch_of(inputs)
    return {"energy_j_per_1000": energy_j_per_1000(start_mj, end_mj, samples),
            "energy_note": f"whole-GPU energy (NVML counter) over {samples} inferences in batches of "
                           f"{_batch_of(inputs)}, idle draw included"}


def _timed_loop(model: Any, inputs: torch.Tensor, device: torch.device, counter: EnergyCounter,
                seconds: float) -> tuple[int, int, int]:
    """Run the model for about `seconds`; return the counter before and after, and the number of calls."""
    calls = 0
    with measure.inference_context(model):
        model(inputs)  # warm-up outside the measured energy
        torch.cuda.synchronize(device)
        start_mj, deadline = counter.read(), time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            model(inputs)
            calls += 1
        torch.cuda.synchronize(device)
        return start_mj, counter.read(), calls


def _quality(model: Any, example: torch.Tensor, splits: Any, reference: torch.Tensor | None,
             budget_s: float, pooled_pad: int | None | bool = False) -> dict[str, Any]:
    """Accuracy (with labels), agreement with the reference's top-1, and the output error."""
    inputs = fidelity.evaluation_inputs(example, splits)
    outputs = fidelity.model_outputs(model, inputs, static_batch=_batch_of(example), budget_s=budget_s)
    notes = [note for note in (inputs.note, outputs.note) if note]
    accuracy = error = agreement = None
    values = outputs.values
    if values is not None and pooled_pad is not False and values.dim() == 3:
        values = fidelity.mean_pooled(values, inputs.fit(inputs.x[:len(values)]), pooled_pad)
    if values is not None and inputs.labels is not None:
        accuracy, note = fidelity.accuracy_top1(values, inputs.labels)
        notes += [note] if note else []
    if values is not None and reference is not None:
        shared = min(len(values), len(reference))
        if values.shape[1:] != reference.shape[1:]:
            notes.append(f"outputs of shape {list(values.shape[1:])} cannot be compared with the reference's "
                         f"{list(reference.shape[1:])}")
        else:
            agreement = fidelity.agreement_top1(values[:shared], reference[:shared])
            error = fidelity.output_error(values[:shared], reference[:shared])
    elif reference is None:
        notes.append("no reference outputs were given, so nothing to compare with")
    return {"evaluated_on": inputs.source, "accuracy": accuracy, "agreement_top1": agreement,
            "output_error": error, "quality_note": "; ".join(notes) or None}


def _parameter_counts(model: Any) -> tuple[int, int]:
    onnx_path = getattr(model, "onnx_path", None)
    if onnx_path is not None:
        from optimizers.measure.onnx_macs import onnx_nonzero_parameters

        return model.parameter_count(), onnx_nonzero_parameters(onnx_path)
    return measure.count_parameters(model), measure.count_nonzero_parameters(model)


def _batch_of(inputs: torch.Tensor) -> int:
    return int(inputs.shape[0]) if inputs.dim() else 1


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


_RATIOS = {
    "size": ("size_bytes",), "params": ("params",), "nonzero_params": ("nonzero_params",), "macs": ("macs",),
    "latency_p50_batch_1": ("latency_ms", "batch_1", "p50"), "latency_p50_batch_32": ("latency_ms", "batch_32", "p50"),
    "throughput": ("throughput_per_s",), "peak_memory": ("peak_memory_mb",), "energy": ("energy_j_per_1000",),
    "perplexity": ("perplexity",), "time_to_first_token": ("generation", "time_to_first_token_ms"),
    "tokens_per_s_batch_1": ("generation", "tokens_per_s", "batch_1"),
}


def compare_reports(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float | None]:
    """after / before for each figure: below 1 means smaller, fewer or faster (above 1 for throughput)."""
    return {name: _ratio(_dig(after, keys), _dig(before, keys)) for name, keys in _RATIOS.items()}


def _dig(report: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        report = report.get(key) if isinstance(report, dict) else None
    return report


def _ratio(after: Any, before: Any) -> float | None:
    if not isinstance(after, int | float) or not isinstance(before, int | float) or not before:
        return None
    return round(after / before, 4)
