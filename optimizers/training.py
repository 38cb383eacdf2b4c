"""The fine-tuning loop shared by the recipes that train (prune, distill) and the bench's reference models.

`fit` trains a module in place on the dataset's train split and leaves it holding the epoch with the
lowest validation loss. It streams the loss every few steps and each epoch's figures to the live chart,
stops early when validation stops improving, and, given a checkpoint directory, saves each epoch so a
retried job resumes after the last finished one. Eager modules and torch.export graph modules train
alike (see optimizers.training_modes).
"""
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from optimizers.config_finetune import FineTuneSettings, TrainSettings
from optimizers.data.splits import DataSplits, fit_to_input
from optimizers.errors import Cancelled, RecipeError
from optimizers.reporting import NullReporter, Reporter
from optimizers.training_modes import fixed_batch, mode_notes, prepare_parameters, set_training, trainable
from optimizers.training_setup import build_optimizer, build_schedule, fingerprint
from optimizers.training_state import RunState, resume

__all__ = ["FineTuneSettings", "TrainSettings", "TrainOutcome", "LossFn", "fit", "evaluate", "trainable"]

LOSS_EVERY_STEPS = 10  # how often the step-level train loss reaches the chart (the mean since the last point)
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainOutcome:
    best_epoch: int
    best_val_accuracy: float
    history: list[dict]  # per epoch: epoch, step, train_loss, train_accuracy, val_loss, val_accuracy, learning_rate
    best_val_loss: float = math.inf
    epochs_run: int = 0  # the last epoch trained (by this call or the run it resumed)
    stopped_early: bool = False
    resumed_from_epoch: int = 0  # 0: started from scratch
    steps: int = 0  # optimizer steps of the whole run; the next fit's step_offset to continue a chart
    notes: list[str] = field(default_factory=list)


def fit(model: nn.Module, splits: DataSplits, input_shape: tuple[int, ...],
        settings: FineTuneSettings = TrainSettings(), report: Reporter | None = None, *,
        checkpoint_dir: str | None = None, stage: str = "fine-tune", metric_prefix: str | None = None,
        loss_fn: LossFn | None = None, after_step: Callable[[int], None] | None = None,
        step_offset: int = 0) -> TrainOutcome:
    """Train `model` in place; leave it in inference mode holding its best validation epoch.

    loss_fn(model, inputs, labels) -> scalar loss replaces cross-entropy (distillation); after_step(step)
    runs after each optimizer step (pruning re-applies its masks there). Metrics are named
    `<metric_prefix or stage>/<measure>` at step `step_offset + steps taken`. A checkpoint_dir holds one
    run: callers that fit several times per job give each fit its own directory.
    """
    usable, reason = trainable(model)
    if not usable:
        raise RecipeError(reason)
    if splits.train_y is None or splits.val_y is None:
        raise RecipeError("fine-tuning needs a dataset with labels")
    report = report or NullReporter()
    loop = _Loop(model, splits, input_shape, settings, report, metric_prefix or stage, stage, loss_fn, after_step,
                 step_offset)
    notes = loop.plan_batches() + mode_notes(model)
    prepare_parameters(model)
    optimizer = build_optimizer(model, settings)
    schedule = build_schedule(optimizer, settings, loop.total_steps)
    shuffle = torch.Generator().manual_seed(settings.seed)
    report.stage(stage)
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):  # the caller's generators stay as they were
        torch.manual_seed(settings.seed)
        state = RunState()
        if checkpoint_dir is not None:
            run_fingerprint = fingerprint(model, settings)
            state, problem = resume(checkpoint_dir, model, optimizer, schedule, shuffle, run_fingerprint)
            notes += [problem] if problem else []
        for note in notes:
            report.log(f"{stage}: {note}")
        if state.epoch:
            report.log(f"{stage}: resuming from the checkpoint after epoch {state.epoch} of {settings.epochs}")
        resumed_from = state.epoch
        while state.epoch < settings.epochs and not _patience_ran_out(state, settings):
            entry = loop.train_epoch(state, optimizer, schedule, shuffle)
            state.record_epoch(model, entry)
            if checkpoint_dir is not None:
                state.save(checkpoint_dir, model, optimizer, schedule, shuffle, run_fingerprint)
            loop.report_epoch(entry)
    stopped = _patience_ran_out(state, settings) and state.epoch < settings.epochs
    if stopped:
        report.log(f"{stage}: stopped early after epoch {state.epoch}: the validation loss has not improved for "
                   f"{state.stale_epochs} epochs; keeping epoch {state.best_epoch}")
    if state.best_model is not None:
        model.load_state_dict(state.best_model)
    set_training(model, False)
    report.progress(loop.total_steps, loop.total_steps, stage)
    return TrainOutcome(state.best_epoch, state.best_val_accuracy, state.history, state.best_val_loss, state.epoch,
                        stopped, resumed_from, step_offset + state.step, notes)


def _patience_ran_out(state: RunState, settings: FineTuneSettings) -> bool:
    return settings.early_stopping_patience > 0 and state.stale_epochs >= settings.early_stopping_patience


@dataclass
class _Loop:
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
    batch_size: int = 0
    usable_samples: int = 0  # the train samples an epoch uses (a fixed batch leaves out the rest)
    total_steps: int = 0

    def plan_batches(self) -> list[str]:
        """Batch size and steps per epoch; returns notes for the user."""
        samples, wanted, fixed = len(self.splits.train_x), self.settings.batch_size, fixed_batch(self.model)
        if fixed is not None and fixed > samples:
            raise RecipeError(f"the exported model takes only batches of {fixed}, more than the {samples} "
                              f"training samples")
        self.batch_size = fixed or min(wanted, samples)
        left_out = samples % self.batch_size if fixed or samples % self.batch_size == 1 else 0
        # A last batch of one sample is dropped too: batch norm cannot train on a single value per channel.
        self.usable_samples = samples - left_out
        self.total_steps = self.settings.epochs * -(-self.usable_samples // self.batch_size)
        if fixed is not None and (fixed != wanted or left_out):
            return [f"the exported model takes only batches of {fixed}: it trains with batches of {fixed} "
                    f"(not {wanted}) and each epoch leaves out {left_out} randomly chosen samples"]
        return []

    def train_epoch(self, state: RunState, optimizer, schedule, shuffle: torch.Generator) -> dict[str, float]:
        model, device = self.model, _device(self.model)
        set_training(model, True)
        order = torch.randperm(len(self.splits.train_x), generator=shuffle)[:self.usable_samples]
        step, losses, window, correct, judged = state.step, torch.zeros((), device=device), [], 0, 0
        learning_rate = optimizer.param_groups[0]["lr"]
        for start in range(0, len(order), self.batch_size):
            if self.report.cancelled():
                raise Cancelled()
            index = order[start:start + self.batch_size]
            inputs = fit_to_input(self.splits.train_x[index], self.input_shape).to(device)
            labels = self.splits.train_y[index].to(device)
            loss, outputs = self._loss(inputs, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if self.after_step is not None:
                self.after_step(self.step_offset + step)
            losses = losses + loss.detach() * len(index)  # on the device: no sync per step
            window.append(loss.detach())
            if outputs is not None and outputs.dim() == 2 and len(outputs) == len(labels):
                correct, judged = correct + (outputs.detach().argmax(dim=1) == labels).sum(), judged + len(labels)
            if step % LOSS_EVERY_STEPS == 0 or start + self.batch_size >= len(order):
                self._report_train_loss(step, torch.stack(window).mean().item())
                window = []
        val_loss, val_accuracy = evaluate(model, self.splits.val_x, self.splits.val_y, self.input_shape)
        return {"epoch": state.epoch + 1, "step": step, "train_loss": losses.item() / len(order),
                "train_accuracy": float(correct) / judged if judged else math.nan, "val_loss": val_loss,
                "val_accuracy": val_accuracy, "learning_rate": learning_rate}

    def _loss(self, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.loss_fn is None:
            outputs = self.model(inputs)
            return nn.functional.cross_entropy(outputs, labels), outputs
        # The model's own output, caught on the way, gives the train accuracy whatever the loss does with it.
        caught: list = []
        handle = self.model.register_forward_hook(lambda module, args, output: caught.append(output))
        try:
            loss = self.loss_fn(self.model, inputs, labels)
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
            if not math.isnan(value):
                self.report.metric(f"{self.prefix}/{measure}", step, value)
        self.report.progress(int(entry["step"]), self.total_steps, self.stage)
        self.report.log(f"{self.stage}: epoch {int(entry['epoch'])} of {self.settings.epochs}: train loss "
                        f"{entry['train_loss']:.4f}, validation loss {entry['val_loss']:.4f}, validation accuracy "
                        f"{entry['val_accuracy']:.4f}")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, input_shape: tuple[int, ...],
             batch_size: int = 256) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) of `model` on x, y, in inference mode.

    A graph exported with a fixed batch gets batches of exactly that size: the last one padded with
    copies of a sample whose outputs are thrown away.
    """
    set_training(model, False)
    fixed, device = fixed_batch(model), _device(model)
    size = fixed or batch_size
    loss, correct = 0.0, 0
    for start in range(0, len(x), size):
        inputs = fit_to_input(x[start:start + size], input_shape).to(device)
        count = len(inputs)
        if fixed is not None and count < fixed:
            inputs = torch.cat([inputs, inputs[:1].expand(fixed - count, *inputs.shape[1:])])
        logits = model(inputs)[:count].float()
        labels = y[start:start + size].to(device)
        loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == labels).sum())
    return loss / len(x), correct / len(x)


def _device(model: nn.Module) -> torch.device:
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")
