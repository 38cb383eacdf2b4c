"""How well a model does, and how close it stays to the original, on the same inputs.

The inputs are the dataset's validation split when the job has one (fitted to the model's input
shape by the DATA helper's `fit_to_input`), else the single example input. Outputs are the
first tensor a model returns, gathered on the CPU in float32: the original's are computed once
and passed as the reference when the optimized model is measured.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from optimizers.errors import first_line
from optimizers.measure import inference as measure

EVAL_BATCH = 256  # bounds memory: a 50,000-sample split is never one tensor through the model
FIRST_EVAL_BATCH = 16  # a first, small batch tells how many more fit the time budget
MAX_KEPT_OUTPUT_VALUES = 20_000_000  # 80 MB of float32 per model; a language model's logits grow fast


@dataclass
class EvalInputs:
    x: torch.Tensor  # raw samples; `fit` makes a batch of them what the model takes
    labels: torch.Tensor | None
    source: str  # "val split" or "example"
    note: str | None = None
    fit: Callable[[torch.Tensor], torch.Tensor] = lambda batch: batch


@dataclass
class Outputs:
    values: torch.Tensor | None  # [samples, ...] first output tensor, float32 on the CPU
    note: str | None = None


def evaluation_inputs(example: torch.Tensor, splits: Any) -> EvalInputs:
    """The validation split fitted to the model's input, or the example when there is none or it cannot fit."""
    if splits is None or getattr(splits, "val_x", None) is None or len(splits.val_x) == 0:
        return EvalInputs(example, None, "example")
    from optimizers.data.splits import fit_to_input  # the DATA package, only when a dataset is used

    # fit_to_input takes the model's whole example shape, batch dimension included (optimizers.data.compat).
    input_shape, dtype = tuple(example.shape), str(example.dtype).removeprefix("torch.")

    def fit(batch: torch.Tensor) -> torch.Tensor:
        return fit_to_input(batch, input_shape, dtype).to(example.device)

    try:
        fit(splits.val_x[:1])  # per batch later, but a mismatch is found here, once
    except ValueError as error:
        return EvalInputs(example, None, "example", f"the dataset does not fit the model's input: {error}")
    return EvalInputs(splits.val_x, splits.val_y, "val split", fit=fit)


def model_outputs(model: Any, inputs: EvalInputs, *, static_batch: int, budget_s: float) -> Outputs:
    """Run the inputs through the model in batches; stop early at the time or memory budget, saying so.

    The first batch is small and later ones are sized to the time left, so a slow model cannot
    overrun the budget by a whole batch of 256. A model that refuses a batch size (a static batch
    in an exported program or ONNX graph) is run at its example's batch size instead.
    """
    chunks: list[torch.Tensor] = []
    kept = done = 0
    size, fixed, samples, stopped = FIRST_EVAL_BATCH, False, len(inputs.x), "time budget"
    deadline = time.perf_counter() + budget_s
    while done < samples and (not chunks or time.perf_counter() < deadline):
        batch = inputs.fit(inputs.x[done:done + size])  # fitted per batch: a resized dataset can be huge
        started = time.perf_counter()
        try:
            output = measure.run_model(model, batch)
        except Exception as error:  # noqa: BLE001 - whatever torch or onnxruntime raise
            if not fixed and size != static_batch:
                size, fixed = static_batch, True
                continue
            if not chunks:
                return Outputs(None, f"the model failed on the evaluation inputs: {first_line(error)}")
            stopped = f"the model takes only batches of {static_batch}"
            break
        first = next(measure.output_tensors(output), None)
        if first is None or first.dim() == 0 or first.shape[0] != len(batch):
            return Outputs(None, "the model's first output has no batch dimension to compare sample by sample")
        chunks.append(first.detach().float().cpu())
        kept, done = kept + chunks[-1].numel(), done + len(batch)
        if kept >= MAX_KEPT_OUTPUT_VALUES:
            stopped = "memory limit for kept outputs"
            break
        if not fixed:
            seconds_per_sample = max((time.perf_counter() - started) / len(batch), 1e-9)
            size = max(1, min(EVAL_BATCH, int((deadline - time.perf_counter()) / seconds_per_sample)))
    note = None if done == samples else f"evaluated on the first {done} of {samples} samples ({stopped})"
    return Outputs(torch.cat(chunks), note)


def accuracy_top1(scores: torch.Tensor, labels: torch.Tensor) -> tuple[float | None, str | None]:
    """Fraction of samples whose highest score is at the label's index."""
    if scores.dim() != 2:
        return None, f"accuracy needs [samples, classes] scores; the model returns {list(scores.shape)}"
    labels = labels[: len(scores)]
    if int(labels.max()) >= scores.shape[1]:
        return None, f"the labels go up to {int(labels.max())} but the model returns {scores.shape[1]} scores"
    return round((scores.argmax(dim=1) == labels).double().mean().item(), 6), None


def agreement_top1(values: torch.Tensor, reference: torch.Tensor) -> float | None:
    """Fraction of predictions (argmax over the last dimension) that match the reference's."""
    if values.dim() < 2 or values.shape[-1] < 2:
        return None  # one score per sample is a regression, not a choice between classes
    return round((values.argmax(dim=-1) == reference.argmax(dim=-1)).double().mean().item(), 6)


def output_error(values: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """Largest absolute difference, signal-to-quantization-noise ratio (dB) and mean per-sample cosine similarity
    against the reference.

    SQNR is None when the outputs are identical ("identical": True; SQNR is infinite) or the
    reference is all zeros.
    """
    difference = (values.double() - reference.double())
    noise = difference.square().sum().item()
    # Per sample, the whole output as one vector: how an embedding model is judged (1.0: same direction).
    cosine = torch.nn.functional.cosine_similarity(values.double().reshape(len(values), -1),
                                                   reference.double().reshape(len(reference), -1), dim=1)
    signal = reference.double().square().sum().item()
    sqnr = 10.0 * math.log10(signal / noise) if noise > 0 and signal > 0 else None
    return {"max_abs": _finite(difference.abs().max().item() if difference.numel() else 0.0),
            "sqnr_db": None if sqnr is None else _finite(round(sqnr, 3)),
            "reference_max_abs": _finite(reference.double().abs().max().item() if reference.numel() else 0.0),
            "mean_cosine": _finite(round(cosine.mean().item(), 6)) if len(values) else None,
            "identical": noise == 0, "samples": len(values)}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # NaN is not JSON; a NaN output shows as a gap


def mean_pooled(values: torch.Tensor, ids: torch.Tensor, pad: int | None) -> torch.Tensor:
    """[N, L, H] token outputs averaged over each sample's positions whose id is not `pad` (all, when pad is None):
    one embedding a text, which compares across tokenizers that split the same text into different pieces."""
    mask = torch.ones(ids.shape, dtype=values.dtype) if pad is None else (ids != pad).to(values.dtype)
    mask = mask[:, :values.shape[1], None].to(values.device)
    return (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
