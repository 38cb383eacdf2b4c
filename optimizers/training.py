"""The fine-tuning loop: train a module on a dataset's train split, keep the best epoch on validation.

A first version, shared from the start: the bench trains its reference models with it, and the prune and
distill recipes will fine-tune with it (their optimizer, schedule and checkpoint settings grow here).
"""
import copy
from dataclasses import dataclass

import torch
from torch import nn

from optimizers.data.splits import DataSplits, fit_to_input
from optimizers.reporting import NullReporter, Reporter


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0


@dataclass
class TrainOutcome:
    best_epoch: int
    best_val_accuracy: float
    history: list[dict]


def fit(model: nn.Module, splits: DataSplits, input_shape: tuple[int, ...], settings: TrainSettings = TrainSettings(),
        report: Reporter | None = None) -> TrainOutcome:
    """Train `model` in place with AdamW and a cosine schedule; leave it holding its best validation epoch."""
    if splits.train_y is None:
        raise ValueError("training needs a dataset with labels")
    report = report or NullReporter()
    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = -(-len(splits.train_x) // settings.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs * steps_per_epoch)
    best_state, best_accuracy, best_epoch, history = None, -1.0, 0, []
    for epoch in range(1, settings.epochs + 1):
        train_loss = _train_epoch(model, splits, input_shape, settings, optimizer, schedule)
        val_loss, val_accuracy = evaluate(model, splits.val_x, splits.val_y, input_shape)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy})
        for name, value in history[-1].items():
            if name != "epoch":
                report.metric(f"fine-tune/{name}", epoch, value)
        report.progress(epoch, settings.epochs, "fine-tune")
        if val_accuracy > best_accuracy:
            best_state, best_accuracy, best_epoch = copy.deepcopy(model.state_dict()), val_accuracy, epoch
    model.load_state_dict(best_state)
    return TrainOutcome(best_epoch, best_accuracy, history)


def _train_epoch(model, splits, input_shape, settings, optimizer, schedule) -> float:
    model.train()
    order = torch.randperm(len(splits.train_x))
    total, count = 0.0, 0
    for start in range(0, len(order), settings.batch_size):
        index = order[start:start + settings.batch_size]
        inputs = fit_to_input(splits.train_x[index], input_shape)
        loss = nn.functional.cross_entropy(model(inputs), splits.train_y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total, count = total + loss.item() * len(index), count + len(index)
    return total / count


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, input_shape: tuple[int, ...],
             batch_size: int = 256) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) of `model` on x, y."""
    model.eval()
    loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = model(fit_to_input(x[start:start + batch_size], input_shape))
        labels = y[start:start + batch_size]
        loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == labels).sum())
    return loss / len(x), correct / len(x)
