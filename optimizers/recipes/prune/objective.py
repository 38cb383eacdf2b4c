"""What fine-tuning after pruning minimises, and how its validation judges it: the labels, or the original's outputs.

With `fine_tune_on="original_outputs"` the pruned model learns to give what the unpruned original gave on the same
inputs (1 - cosine similarity, as distill's output matching), so a dataset without labels is enough: sentences for
a sentence-embedding encoder. For token outputs [N, L, H] the cosine is taken per position and averaged over the
positions that are not padding, since padded positions are noise the original never meant (a mean-pooled sentence
embedding masks them out too). Validation is the mean cosine to the original's outputs on the validation split.
"""
import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from optimizers.configs.prune import ORIGINAL_OUTPUTS, PruneConfig
from optimizers.data.splits import DataSplits, fit_to_input
from optimizers.recipes.distill.judge import validation_targets
from optimizers.recipes.distill.loss import teacher_logits
from optimizers.training.loop import EvaluateFn, LossFn
from optimizers.training.modes import set_training


@dataclass(frozen=True)
class Objective:
    """loss_fn and evaluate_fn for `fit` (None, None: cross-entropy and accuracy on the labels)."""

    loss_fn: LossFn | None = None
    evaluate_fn: EvaluateFn | None = None
    score_name: str = "accuracy"

    def gradient_loss(self, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The training loss on one batch, for ranking by gradients (the taylor criterion)."""
        if self.loss_fn is not None:
            return self.loss_fn(model, inputs, torch.zeros(len(inputs), dtype=torch.long))
        return F.cross_entropy(model(inputs), labels)


LABELS_OBJECTIVE = Objective()


def objective_for(config: PruneConfig, original: Any, data: DataSplits, example: torch.Tensor) -> Objective:
    if config.fine_tune_on != ORIGINAL_OUTPUTS:
        return LABELS_OBJECTIVE
    loss_fn = matching_loss(original)
    return Objective(loss_fn, cosine_judge(original, data, example), "cosine")


def matching_loss(original: Any) -> LossFn:
    """1 - the mean cosine between the pruned model's outputs and the original's on the same inputs. A partial, not a
    closure: spawned replicas (GPUs, other hosts) receive it through pickle."""
    return functools.partial(_matching_loss, original, getattr(original, "pad_token_id", None))


def _matching_loss(original: Any, pad: int | None, model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    total, count = cosine_sum(model(inputs), teacher_logits(original, inputs), inputs, pad)
    return 1 - total / count


def cosine_judge(original: Any, data: DataSplits, example: torch.Tensor) -> EvaluateFn:
    """evaluate_fn: (1 - mean cosine, mean cosine) to the original's outputs on the validation split."""
    batches, targets = validation_targets(original, data, example)
    return functools.partial(_cosine_judge, batches, targets, getattr(original, "pad_token_id", None))


@torch.no_grad()
def _cosine_judge(batches: list[torch.Tensor], targets: list[torch.Tensor], pad: int | None,
                  model) -> tuple[float, float]:
    set_training(model, False)
    total, count = 0.0, 0.0
    for inputs, target in zip(batches, targets, strict=True):
        batch_total, batch_count = cosine_sum(model(inputs), target, inputs, pad)
        total, count = total + float(batch_total), count + float(batch_count)
    score = total / count
    return 1 - score, score


def mean_cosine(outputs: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor, pad: int | None) -> float:
    total, count = cosine_sum(outputs, target, inputs, pad)
    return float(total / count)


def cosine_sum(outputs: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor, pad: int | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of cosines, how many): per sample for [N, C] outputs, per unpadded position for [N, L, H]."""
    outputs, target = outputs.float(), target.float()
    if outputs.dim() < 3:
        cosines = F.cosine_similarity(outputs.flatten(1), target.flatten(1), dim=1)
        return cosines.sum(), torch.tensor(float(len(cosines)))
    cosines = F.cosine_similarity(outputs, target, dim=-1)  # [N, L, ...]
    if cosines.dim() > 2:
        cosines = cosines.flatten(2).mean(dim=2)
    weights = torch.ones_like(cosines)
    if pad is not None and not inputs.is_floating_point() and tuple(inputs.shape) == tuple(cosines.shape):
        weights = (inputs != pad).to(cosines.dtype)
    return (cosines * weights).sum(), weights.sum().clamp(min=1.0)


def accumulate_gradients(model: nn.Module, data: DataSplits, example: torch.Tensor, objective: "Objective", *,
                         samples: int, batch: int) -> None:
    """The loss's gradients on the first `samples` training samples, in batches, for the taylor criterion
    (|weight x gradient|): left in the parameters' .grad."""
    model.zero_grad(set_to_none=True)
    for start in range(0, min(samples, len(data.train_x)), batch):
        inputs = fit_to_input(data.train_x[start:start + batch], tuple(example.shape), data.input_dtype)
        labels = data.train_y[start:start + batch] if data.train_y is not None else None
        objective.gradient_loss(model, inputs, labels).backward()
