"""The fine-tuning loop shared by the recipes that train (prune, distill) and the bench's reference models.

`fit` trains a module in place on the dataset's train split and leaves it holding the epoch with the
lowest validation loss. It streams the loss every few steps and each epoch's figures to the live chart,
stops early when validation stops improving, and, given a checkpoint directory, saves each epoch so a
retried job resumes after the last finished one. Eager modules and torch.export graph modules train
alike (see optimizers.training.modes).
"""
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from optimizers.configs.finetune import FineTuneSettings, TrainSettings
from optimizers.data.splits import DataSplits
from optimizers.errors import RecipeError
from optimizers.reporters import NullReporter, Reporter
from optimizers.training.distributed import RankGroup, choose_ranks
from optimizers.training.epochs import LOSS_EVERY_STEPS, EpochRunner, EvaluateFn, LossFn, device_of, evaluate
from optimizers.training.hosts import host_count
from optimizers.training.modes import mode_notes, prepare_parameters, set_training, trainable
from optimizers.training.replicated import fit_replicated, measure_scaling
from optimizers.training.setup import build_optimizer, build_schedule, fingerprint
from optimizers.training.state import RunState, resume

__all__ = ["FineTuneSettings", "TrainSettings", "TrainOutcome", "LossFn", "EvaluateFn", "LOSS_EVERY_STEPS", "fit",
           "evaluate", "trainable"]


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
    # With ranks > 1: backend, ranks, replica_checks, and scaling ([{ranks, samples_per_s, efficiency}] or None).
    distributed: dict | None = None


def fit(model: nn.Module, splits: DataSplits | None, input_shape: tuple[int, ...],
        settings: FineTuneSettings | None = None, report: Reporter | None = None, *,
        checkpoint_dir: str | None = None, stage: str = "fine-tune", metric_prefix: str | None = None,
        loss_fn: LossFn | None = None, after_step: Callable[[int], None] | None = None,
        step_offset: int = 0, evaluate_fn: EvaluateFn | None = None, score_name: str = "accuracy",
        measure_ranks: bool = True) -> TrainOutcome:
    """Train `model` in place; leave it in inference mode holding its best validation epoch.

    loss_fn(model, inputs, labels) -> scalar loss replaces cross-entropy (distillation); after_step(step)
    runs after each optimizer step (pruning re-applies its masks there). evaluate_fn(model) -> (loss, score)
    replaces cross-entropy and accuracy on the validation labels (named `val_<score_name>` on the chart); with
    both loss_fn and evaluate_fn the dataset needs no labels. Metrics are named
    `<metric_prefix or stage>/<measure>` at step `step_offset + steps taken`. A checkpoint_dir holds one
    run: callers that fit several times per job give each fit its own directory. settings default to TrainSettings().
    """
    usable, reason = trainable(model)
    if not usable:
        raise RecipeError(reason)
    unlabelled_ok = loss_fn is not None and evaluate_fn is not None
    if splits is None or (not unlabelled_ok and (splits.train_y is None or splits.val_y is None)):
        raise RecipeError("fine-tuning needs a dataset with labels")
    settings = settings or TrainSettings()
    report = report or NullReporter()
    options = {"checkpoint_dir": checkpoint_dir, "stage": stage, "prefix": metric_prefix or stage, "loss_fn": loss_fn,
               "after_step": after_step, "step_offset": step_offset, "evaluate_fn": evaluate_fn,
               "score_name": score_name}
    ranks, backend = choose_ranks(settings.ranks, device_of(model))  # on each of the job's hosts
    if ranks == 1 and host_count() == 1:
        return train(model, splits, input_shape, settings, report, **options)
    scaling = measure_scaling(train, model, splits, input_shape, settings, report, options, ranks, backend) \
        if measure_ranks else None
    outcome = fit_replicated(train, model, splits, input_shape, settings, report, options, ranks, backend)
    outcome.distributed = {**outcome.distributed, "scaling": scaling}
    return outcome


def train(model: nn.Module, splits: DataSplits, input_shape: tuple[int, ...], settings: FineTuneSettings,
          report: Reporter, *, checkpoint_dir: str | None, stage: str, prefix: str, loss_fn: LossFn | None,
          after_step: Callable[[int], None] | None, step_offset: int, evaluate_fn: EvaluateFn | None,
          score_name: str, group: "RankGroup | None" = None, forward_model: nn.Module | None = None) -> TrainOutcome:
    """fit's loop in this process: alone, or as one rank of `group` (then `forward_model` is the DDP wrapper)."""
    loop = EpochRunner(model, splits, input_shape, settings, report, prefix, stage, loss_fn,
                       after_step, step_offset, evaluate_fn, score_name, group=group, forward_model=forward_model)
    notes = loop.plan_batches() + mode_notes(model)
    prepare_parameters(model)
    optimizer = build_optimizer(model, settings)
    schedule = build_schedule(optimizer, settings, loop.total_steps)
    shuffle = torch.Generator().manual_seed(settings.seed)  # the same order on every rank: each takes its share
    saves = checkpoint_dir is not None and (group is None or group.rank == 0)  # the replicas' weights are the same
    report.stage(stage)
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):  # the caller's generators stay as they were
        torch.manual_seed(settings.seed + (group.rank if group is not None else 0))  # each replica its own dropout
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
            if saves:
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
