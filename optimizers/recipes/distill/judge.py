"""How a student is judged on the validation split when labels cannot judge it: against its teacher's outputs
there (top-1 agreement for soft targets, mean cosine similarity for matched embeddings), with the training loss."""
import functools
from typing import Any

import torch
from torch.nn import functional as F

from optimizers.configs.distill import SOFT_TARGETS
from optimizers.data.splits import DataSplits, fit_to_input
from optimizers.recipes.distill.loss import teacher_logits
from optimizers.training.loop import EvaluateFn, LossFn
from optimizers.training.modes import set_training

BATCH = 256


def score_name(loss: str) -> str:
    return "agreement" if loss == SOFT_TARGETS else "cosine"


def validation_targets(teacher: Any, data: DataSplits, example: torch.Tensor
                       ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The validation split in batches fitted to the model's input, and the teacher's outputs on each, computed
    once: the teacher never changes."""
    batches = [fit_to_input(data.val_x[start:start + BATCH], tuple(example.shape), data.input_dtype)
               for start in range(0, len(data.val_x), BATCH)]
    return batches, [teacher_logits(teacher, inputs) for inputs in batches]


def teacher_judge(teacher: Any, data: DataSplits, example: torch.Tensor, loss: str, loss_fn: LossFn) -> EvaluateFn:
    """A partial, not a closure: spawned replicas receive it through pickle."""
    batches, targets = validation_targets(teacher, data, example)
    return functools.partial(_judge, batches, targets, loss, loss_fn)


@torch.no_grad()
def _judge(batches: list[torch.Tensor], targets: list[torch.Tensor], loss: str, loss_fn: LossFn,
           student) -> tuple[float, float]:
    set_training(student, False)
    total_loss, total_score, count = 0.0, 0.0, 0
    for inputs, target in zip(batches, targets, strict=True):
        outputs = student(inputs).float()
        size = len(inputs)
        total_loss += float(loss_fn(student, inputs, torch.zeros(size, dtype=torch.long))) * size
        if loss == SOFT_TARGETS:  # a language model's agreement: its share of positions, per sample
            agrees = (outputs.argmax(dim=-1) == target.argmax(dim=-1)).float()
            total_score += float(agrees.reshape(size, -1).mean(dim=1).sum())
        else:
            total_score += float(F.cosine_similarity(outputs.flatten(1), target.flatten(1), dim=1).sum())
        count += size
    return total_loss / count, total_score / count
