"""One epoch of the fine-tuning loop, its figures on the chart, and evaluation on the validation split.

`optimizers.training.loop.fit` drives the epochs; `EpochRunner` runs one: batches in a seeded shuffled order,
the loss (cross-entropy or the caller's `loss_fn`), the optimizer and schedule steps, the caller's
`after_step` hook, cancellation checked before every step, and the train loss streamed every few steps.
"""
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from optimizers.configs.finetune import FineTuneSettings
from optimizers.data.splits import DataSplits, fit_to_input
from optimizers.errors import Cancelled, RecipeError
from optimizers.reporters import Reporter
from optimizers.training.modes import fixed_batch, set_training
from optimizers.training.state import RunState

if TYPE_CHECKING:
    from optimizers.training.distributed import RankGroup

LOSS_EVERY_STEPS = 10  # how often the step-level train loss reaches the chart (the mean since the last point)
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
# evaluate_fn(model) -> (validation loss, validation score): replaces cross-entropy and accuracy on the labels when
# there are none to judge by (a student judged by its agreement with its teacher).
EvaluateFn = Callable[[nn.Module], tuple[float, float]]


@dataclass
class EpochRunner:
    model: nn.Module
    splits: DataSplits
    input_shape: tuple[int, ...]
    settings: FineTuneSettings
    report: Reporter
    prefix: str
    stage: str
    loss_fn: LossFn | None
    after_step: Callable[[int], None] | None
    step_offset: int
    evaluate_fn: EvaluateFn | None = None
    score_name: str = "accuracy"  # what the validation score is called on the chart
    batch_size: int = 0
    usable_samples: int = 0  # the train samples an epoch uses (a fixed batch leaves out the rest)
    total_steps: int = 0
    group: "RankGroup | None" = None  # the data-parallel replicas this one trains with; None: trains alone
    forward_model: nn.Module | None = None  # what the training forward pass calls (the DDP wrapper); None: model

    def plan_batches(self) -> list[str]:
        """Batch size and steps per epoch; returns notes for the user."""
        samples, wanted, fixed = len(self.splits.train_x), self.settings.batch_size, fixed_batch(self.model)
        if fixed is not None and fixed > samples:
            raise RecipeError(f"the exported model takes only batches of {fixed}, more than the {samples} "
                              f"training samples")
        self.batch_size = fixed or min(wanted, samples)
        world = self.group.world if self.group is not None else 1
        if world > 1 and fixed is not None:
            raise RecipeError(f"the exported model takes only batches of {fixed}, so its batches cannot be shared by "
                              f"{world} replicas; use ranks 1, or export it with a dynamic batch dimension")
        if world > 1 and self.batch_size < 2 * world:
            raise RecipeError(f"a batch of {self.batch_size} cannot be shared by {world} replicas (each needs at "
                              f"least 2 samples); use a batch_size of at least {2 * world} or fewer ranks")
        remainder = samples % self.batch_size
        left_out = remainder if fixed or 0 < remainder < 2 * world else 0
        # A last batch too small for every replica to get 2 samples is dropped too: batch norm cannot train on a
        # single value per channel.
        self.usable_samples = samples - left_out
        self.total_steps = self.settings.epochs * -(-self.usable_samples // self.batch_size)
        if fixed is not None and (fixed != wanted or left_out):
            return [f"the exported model takes only batches of {fixed}: it trains with batches of {fixed} "
                    f"(not {wanted}) and each epoch leaves out {left_out} randomly chosen samples"]
        return []

    def train_epoch(self, state: RunState, optimizer, schedule, shuffle: torch.Generator) -> dict[str, float]:
        model, group = self.model, self.group
        set_training(model, True)
        order = torch.randperm(len(self.splits.train_x), generator=shuffle)[:self.usable_samples]
        step, losses, seen, window, correct, judged = state.step, 0.0, 0, [], 0, 0
        learning_rate = optimizer.param_groups[0]["lr"]
        for start in range(0, len(order), self.batch_size):
            if self.report.cancelled():
                raise Cancelled()
            index = order[start:start + self.batch_size]
            if group is not None:
                index = group.shard(index)  # every replica takes its share of the same batch
            loss, outputs, labels = self.train_step(index, optimizer, schedule)
            step += 1
            if self.after_step is not None:
                self.after_step(self.step_offset + step)
            if group is not None:
                group.check_replicas(model, step)
            losses, seen = losses + loss.detach() * len(index), seen + len(index)  # on the device: no sync per step
            window.append(loss.detach())
            if self.splits.train_y is not None and outputs is not None and outputs.dim() == 2 \
                    and len(outputs) == len(labels):
                correct, judged = correct + (outputs.detach().argmax(dim=1) == labels).sum(), judged + len(labels)
            if step % LOSS_EVERY_STEPS == 0 or start + self.batch_size >= len(order):
                self._report_train_loss(step, _mean(group, torch.stack(window).mean()))
                window = []
        losses, seen, correct, judged = _totals(group, losses, seen, correct, judged)
        val_loss, val_accuracy = self._validate()
        return {"epoch": state.epoch + 1, "step": step, "train_loss": losses / seen,
                "train_accuracy": correct / judged if judged else math.nan, "val_loss": val_loss,
                "val_accuracy": val_accuracy, "learning_rate": learning_rate}

    def train_step(self, index: torch.Tensor, optimizer, schedule) -> tuple[torch.Tensor, torch.Tensor | None,
                                                                             torch.Tensor]:
        """One optimizer step on the train samples at `index`: (loss, the model's outputs or None, labels)."""
        device = device_of(self.model)
        inputs = fit_to_input(self.splits.train_x[index], self.input_shape, self.splits.input_dtype).to(device)
        labels = self._labels(index).to(device)
        loss, outputs = self._loss(inputs, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        return loss, outputs, labels

    def _validate(self) -> tuple[float, float]:
        """(validation loss, score); with replicas the first one judges (they hold the same weights) and shares."""
        if self.group is not None and self.group.rank != 0:
            return self.group.from_first(None)
        figures = self.evaluate_fn(self.model) if self.evaluate_fn else \
            evaluate(self.model, self.splits.val_x, self.splits.val_y, self.input_shape, dtype=self.splits.input_dtype)
        return self.group.from_first(figures) if self.group is not None else figures

    def _labels(self, index: torch.Tensor) -> torch.Tensor:
        """The batch's labels; placeholders when the dataset has none (then only a loss_fn that ignores them runs)."""
        if self.splits.train_y is None:
            return torch.zeros(len(index), dtype=torch.long)
        return self.splits.train_y[index]

    def _loss(self, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        forward = self.forward_model or self.model  # the DDP wrapper, whose backward averages the replicas' gradients
        if self.loss_fn is None:
            outputs = forward(inputs)
            return nn.functional.cross_entropy(outputs, labels), outputs
        # The model's own output, caught on the way, gives the train accuracy whatever the loss does with it.
        caught: list = []
        handle = self.model.register_forward_hook(lambda module, args, output: caught.append(output))
        try:
            loss = self.loss_fn(forward, inputs, labels)
        finally:
            handle.remove()
        return loss, caught[-1] if caught and isinstance(caught[-1], torch.Tensor) else None

    def _report_train_loss(self, step: int, loss: float) -> None:
        if not math.isfinite(loss):
            raise RecipeError(f"{self.stage}: the training loss became {loss} at step {step}; "
                              f"try a lower learning_rate")
        self.report.metric(f"{self.prefix}/train_loss", self.step_offset + step, loss)
        self.report.progress(step, self.total_steps, self.stage)

    def report_epoch(self, entry: dict[str, float]) -> None:
        step = self.step_offset + int(entry["step"])
        for measure in ("epoch_train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            value = entry["train_loss" if measure == "epoch_train_loss" else measure]
            name = f"val_{self.score_name}" if measure == "val_accuracy" else measure
            if not math.isnan(value):
                self.report.metric(f"{self.prefix}/{name}", step, value)
        self.report.progress(int(entry["step"]), self.total_steps, self.stage)
        self.report.log(f"{self.stage}: epoch {int(entry['epoch'])} of {self.settings.epochs}: train loss "
                        f"{entry['train_loss']:.4f}, validation loss {entry['val_loss']:.4f}, validation "
                        f"{self.score_name} {entry['val_accuracy']:.4f}")


def _mean(group: "RankGroup | None", value: torch.Tensor) -> float:
    return group.mean(value) if group is not None else value.item()


def _totals(group: "RankGroup | None", *figures) -> list[float]:
    """The epoch's sums over every replica (as they are, training alone)."""
    if group is not None:
        return group.sum(*figures)
    return [float(figure) for figure in figures]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, input_shape: tuple[int, ...],
             batch_size: int = 256, dtype: str = "float32") -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) of `model` on x, y, in inference mode.

    A graph exported with a fixed batch gets batches of exactly that size: the last one padded with
    copies of a sample whose outputs are thrown away.
    """
    set_training(model, False)
    fixed, device = fixed_batch(model), device_of(model)
    size = fixed or batch_size
    loss, correct = 0.0, 0
    for start in range(0, len(x), size):
        inputs = fit_to_input(x[start:start + size], input_shape, dtype).to(device)
        count = len(inputs)
        if fixed is not None and count < fixed:
            inputs = torch.cat([inputs, inputs[:1].expand(fixed - count, *inputs.shape[1:])])
        logits = model(inputs)[:count].float()
        labels = y[start:start + size].to(device)
        loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == labels).sum())
    return loss / len(x), correct / len(x)


def device_of(model: nn.Module) -> torch.device:
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")
