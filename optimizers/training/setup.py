"""The optimizer and learning-rate schedule a FineTuneSettings asks for.

The schedule is a pure function of the step index and the total number of steps (a LambdaLR), so a
resumed run that trains for more epochs than the first one planned continues on the new curve, and
the schedule's checkpoint is only its step counter.
"""
import math

import torch
from torch import nn

from optimizers.configs.finetune import STEP_GAMMA, STEP_MILESTONES, FineTuneSettings


def build_optimizer(model: nn.Module, settings: FineTuneSettings) -> torch.optim.Optimizer:
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if settings.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=settings.learning_rate, momentum=settings.momentum,
                               weight_decay=settings.weight_decay)
    return torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)


def learning_rate_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the initial learning rate at `step` (0-based) of `total_steps`."""
    if schedule == "cosine":
        # Reaches zero at the last step, as CosineAnnealingLR with T_max=total_steps does.
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if schedule == "step":
        # Milestones in steps, not epochs: a one-epoch run still decays halfway through it.
        passed = sum(step >= int(fraction * total_steps) for fraction in STEP_MILESTONES)
        return STEP_GAMMA ** passed
    return 1.0


def build_schedule(optimizer: torch.optim.Optimizer, settings: FineTuneSettings,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    total = max(total_steps, 1)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(settings.lr_schedule, step, total))


def resync_learning_rate(optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Set each group's rate from the schedule at its restored step.

    A restored optimizer holds the rate the interrupted run computed, which differs when the resumed
    run plans a different number of epochs.
    """
    for group, lr_lambda in zip(optimizer.param_groups, schedule.lr_lambdas, strict=True):
        group["lr"] = group["initial_lr"] * lr_lambda(schedule.last_epoch)
    schedule._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports


def fingerprint(model: nn.Module, settings: FineTuneSettings) -> dict:
    """What must match for a checkpoint to belong to this run: the model's tensors and the training settings.

    epochs and early_stopping_patience may change between the run and its resumption (train for longer), and so
    may ranks: replicas hold identical weights, so a checkpoint does not depend on how many trained it.
    """
    tensors = [f"{name}:{tuple(value.shape)}:{value.dtype}" for name, value in model.state_dict().items()]
    training = {key: value for key, value in settings.to_train_settings().to_dict().items()
                if key not in ("epochs", "early_stopping_patience", "ranks")}
    return {"tensors": tensors, "settings": training}


def fingerprint_difference(saved: dict, current: dict) -> str | None:
    """None when they match, else what differs, in words."""
    if saved.get("tensors") != current["tensors"]:
        return "the model's layers or shapes differ"
    before = saved.get("settings", {})
    changed = sorted(key for key, value in current["settings"].items() if before.get(key) != value)
    return f"settings changed: {', '.join(changed)}" if changed else None
