"""What the student learns from: the teacher's softened outputs blended with the dataset's labels (Hinton et al.).

The losses are partials of module-level functions, not closures: spawned replicas (GPUs, other hosts) receive them,
with the teacher, through pickle.
"""
import functools
from typing import Any

import torch
from torch.nn import functional as F

from optimizers.measure.inference import output_tensors, run_model
from optimizers.training.loop import LossFn


def teacher_logits(teacher: Any, inputs: torch.Tensor) -> torch.Tensor:
    """The teacher's first output as float32 on the inputs' device; any model Slimforge loads, run forward only."""
    first = next(output_tensors(run_model(teacher, inputs)), None)
    if first is None:
        raise ValueError("the teacher returns no tensor")
    # A clone made outside inference mode: an inference tensor cannot be saved for the student's backward pass.
    return first.detach().to(device=inputs.device, dtype=torch.float32).clone()


def distillation_loss(teacher: Any, temperature: float, alpha: float) -> LossFn:
    """alpha * T^2 * KL(teacher || student, both softened by T) + (1 - alpha) * cross-entropy with the labels.

    T^2 keeps the soft term's gradients the size of the hard term's whatever the temperature.
    """
    return functools.partial(_distillation_loss, teacher, temperature, alpha)


def _distillation_loss(teacher: Any, temperature: float, alpha: float, student, inputs: torch.Tensor,
                       labels: torch.Tensor) -> torch.Tensor:
    logits = student(inputs)
    soft = F.kl_div(F.log_softmax(per_position(logits) / temperature, dim=1),
                    F.softmax(per_position(teacher_logits(teacher, inputs)) / temperature, dim=1),
                    reduction="batchmean") * temperature ** 2
    return soft if alpha >= 1.0 else alpha * soft + (1 - alpha) * F.cross_entropy(logits, labels)


def per_position(logits: torch.Tensor) -> torch.Tensor:
    """[N, C] as it is; a language model's [N, L, V] as N * L predictions of the next token, each a distribution."""
    return logits.flatten(0, -2) if logits.dim() > 2 else logits


def output_matching_loss(teacher: Any, kind: str) -> LossFn:
    """Match the teacher's outputs themselves (embeddings): mean squared error, or 1 - mean cosine similarity."""
    return functools.partial(_output_matching_loss, teacher, kind)


def _output_matching_loss(teacher: Any, kind: str, student, inputs: torch.Tensor,
                          labels: torch.Tensor) -> torch.Tensor:
    outputs, target = student(inputs), teacher_logits(teacher, inputs)
    if kind == "mse":
        return F.mse_loss(outputs, target)
    return 1 - F.cosine_similarity(outputs.flatten(1), target.flatten(1), dim=1).mean()
