"""Fine-tuning between pruning steps, through the shared loop (`optimizers.training.loop.fit`).

A gradual schedule calls `fit` once per pruning step. `reporters.ScheduleReporter` makes those calls read as
one run on the page: each gets its own slice of the progress bar, and each fit's step numbers continue where
the previous one stopped (fit's `step_offset`), so the loss charts run on instead of starting over.
"""
import dataclasses
import functools
import os

import torch
from torch import nn

from optimizers.configs.prune import PruneConfig
from optimizers.data.splits import DataSplits
from optimizers.errors import Cancelled, RecipeError, first_line
from optimizers.recipes.prune.layers import Masks, agp_sparsity, apply_masks
from optimizers.recipes.prune.objective import LABELS_OBJECTIVE, Objective
from optimizers.reporters import Reporter, ScheduleReporter
from optimizers.training.loop import fit

NEEDS_LABELS = "pruning fine-tunes the model, so it needs a dataset with labels; choose one for this experiment"


def require_labels(data: DataSplits | None) -> DataSplits:
    if data is None or data.train_y is None or data.val_y is None:
        raise RecipeError(NEEDS_LABELS)
    return data


def recipe_example(model: nn.Module, data: DataSplits, example: torch.Tensor | None) -> torch.Tensor:
    """The job's example input; without one, a dataset sample as it is (batch of 1), if the model takes it."""
    if example is not None:
        return example
    sample = data.val_x[:1].to(torch.float32)
    try:
        with torch.no_grad():
            model(sample)
    except Exception as error:  # noqa: BLE001 - whatever the model raises, the sample does not fit it
        raise RecipeError(f"the model does not take the dataset's samples of shape {list(sample.shape)} as they "
                          f"are, and no example input was given: {first_line(error)}") from error
    return sample


def finetune(model: nn.Module, data: DataSplits, example: torch.Tensor, config: PruneConfig,
             report: ScheduleReporter, *, epochs: int, stage: str, masks: Masks | None = None,
             weights: dict | None = None, checkpoint_dir: str | None = None,
             objective: Objective = LABELS_OBJECTIVE) -> dict | None:
    """Train `model` in place for `epochs`, re-applying `masks` to `weights` after every optimizer step;
    `objective` says what it learns from (the labels unless told otherwise).

    Returns the data-parallel figures (TrainOutcome.distributed) when it trained on several replicas; the first
    fine-tuning of a job measures the scaling at 1..ranks replicas, the later ones reuse it.
    """
    stop_if_cancelled(report)
    if epochs <= 0:
        return None
    settings = dataclasses.replace(config.to_train_settings(), epochs=epochs)
    # Re-applied after every optimizer step: momentum and weight decay would otherwise revive pruned weights. A partial,
    # not a closure: spawned replicas (GPUs, other hosts) receive it through pickle.
    after_step = functools.partial(_reapply_masks, weights, masks) if masks else None
    outcome = fit(model, data, tuple(example.shape), settings, report, checkpoint_dir=checkpoint_dir, stage=stage,
                  after_step=after_step, step_offset=report.steps, measure_ranks=report.steps == 0,
                  loss_fn=objective.loss_fn, evaluate_fn=objective.evaluate_fn, score_name=objective.score_name)
    report.steps = outcome.steps
    if masks:
        apply_masks(weights, masks)  # whatever epoch fit kept, its zeros are where the masks say
    stop_if_cancelled(report)
    return outcome.distributed


def _reapply_masks(weights: dict, masks: Masks, step: int) -> None:
    apply_masks(weights, masks)


def step_checkpoints(checkpoint_dir: str | None, step: int) -> str | None:
    """Each pruning step's fine-tuning keeps its own checkpoints: a resumed job replays the steps in order."""
    return None if checkpoint_dir is None else os.path.join(checkpoint_dir, f"prune-step-{step}")


def stop_if_cancelled(report: Reporter) -> None:
    if report.cancelled():
        raise Cancelled()


def agp_schedule(config: PruneConfig, report: Reporter) -> tuple[ScheduleReporter, list[int]]:
    """The gradual schedule of every method: its reporter (each step a slice of the progress bar, weighted by its
    fine-tuning epochs) and the epochs after each step (`epochs_per_step`, then `epochs` after the last)."""
    epochs = [config.epochs_per_step] * (config.agp_steps - 1) + [config.epochs]
    return ScheduleReporter(report, [max(count, 0.2) for count in epochs]), epochs


def begin_step(schedule: ScheduleReporter, report: Reporter, step: int, steps: int) -> None:
    stop_if_cancelled(report)
    schedule.stage(f"prune step {step}/{steps}")
    schedule.progress(0, 1, "prune")


def structured_goal(config: PruneConfig, step: int) -> tuple[float, float]:
    """The MACs and parameter ratios at most left after `step` of the structured methods' AGP schedule."""
    steps = config.agp_steps
    return (1 - agp_sparsity(step, steps, 1 - config.target_macs_ratio),
            1 - agp_sparsity(step, steps, 1 - config.target_params_ratio))


def report_reached(report: Reporter, schedule: ScheduleReporter, step: int, steps: int,
                   reached: tuple[float, float]) -> None:
    report.metric("prune/macs_ratio", schedule.steps, reached[0])
    report.metric("prune/params_ratio", schedule.steps, reached[1])
    report.log(f"step {step}/{steps}: {reached[0]:.1%} of the MACs and {reached[1]:.1%} of the parameters left")
