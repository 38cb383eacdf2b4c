"""Distill: train a small student to imitate the uploaded model (the teacher), and say honestly whether it helped.

The teacher is any model Slimforge loads, run forward only. Each student (one per seed) trains through the
shared fine-tuning loop on the teacher's softened outputs blended with the labels; with
`compare_without_teacher`, the same student trains on the labels alone with the same budget and seeds. The
report gives mean and standard deviation of both, and the page says whether the teacher's gain is larger
than the spread between seeds. The best distilled student is the result.
"""
import copy
import dataclasses
import os
import statistics
from typing import Any

import torch
from torch import nn

from optimizers.configs.distill import BUILTIN, SOFT_TARGETS, STUDENT_ROLE, THINNER_COPY, UPLOADED, DistillConfig
from optimizers.data.splits import DataSplits, fit_to_input
from optimizers.errors import RecipeError, first_line
from optimizers.recipes.distill.hint import FeatureCatcher, HintedStudent, hinted_loss, last_linear
from optimizers.recipes.distill.judge import score_name, teacher_judge
from optimizers.recipes.distill.loss import distillation_loss, output_matching_loss, teacher_logits
from optimizers.recipes.distill.thinner import thinner_applies, thinner_copy
from optimizers.registry import RecipeResult, register
from optimizers.reporters import Reporter, ScheduleReporter
from optimizers.training.loop import TrainOutcome, fit, trainable
from optimizers.training.replicated import distributed_extras
from optimizers.zoo.models import build_model

NEEDS_DATA = "distillation trains the student on a dataset's samples; choose one for this experiment"
UPLOADED_STUDENT = ("an uploaded student is a state dict (safetensors) uploaded with its architecture, so that it "
                    "can be trained and saved")


def distill_applies(model: Any) -> tuple[bool, str]:
    return True, ("any model that runs can teach: it is only run forward (needs a dataset; without labels the "
                  "student learns from the teacher alone)")


def student_applicability(model: Any) -> dict[str, dict[str, Any]]:
    copy_ok, copy_reason = thinner_applies(model)
    return {BUILTIN: {"applicable": True, "reason": "a built-in architecture with the settings you give"},
            THINNER_COPY: {"applicable": copy_ok, "reason": copy_reason},
            UPLOADED: {"applicable": True, "reason": "another of your models, uploaded as a state dict with its "
                                                     "architecture"}}


@register("distill", DistillConfig, applies_to=distill_applies, variants=student_applicability)
def distill(model: Any, data: DataSplits | None, config: DistillConfig, report: Reporter, *,
            example: torch.Tensor, checkpoint_dir: str | None = None, architecture: dict | None = None,
            models: dict[str, dict[str, Any]] | None = None) -> RecipeResult:
    """Return the best distilled student; the teacher (`model`) is only run forward and never modified."""
    report.stage("distill")
    if data is None:
        raise RecipeError(NEEDS_DATA)
    plan = _Plan.of(model, data, example, config)
    notes = list(plan.notes)
    if plan.teacher_accuracy is not None:
        report.log(f"distill: the teacher's validation accuracy is {plan.teacher_accuracy:.4f}")
        report.metric("teacher/val_accuracy", 0, plan.teacher_accuracy)  # a reference line, first step to last
    runs = [("student", seed) for seed in range(config.seeds)]
    runs += [("no_teacher", seed) for seed in range(config.seeds)] if plan.baseline else []
    schedule = ScheduleReporter(report, [1.0] * len(runs))
    # Seed i of both kinds starts from the same student: the two differ only in what they learn from.
    outcomes: dict[str, list[TrainOutcome]] = {"student": [], "no_teacher": []}
    best: nn.Module | None = None
    student_architecture = None
    for kind, seed in runs:
        student, student_architecture, student_notes = _new_student(model, config, architecture, models or {},
                                                                    config.seed + seed)
        _check_outputs(model, student, example)
        taught = kind == "student"
        trained = HintedStudent(student, plan.hint_width) if taught and plan.hint_width else student
        outcome = fit(trained, data, tuple(example.shape), _settings(config, seed), schedule,
                      checkpoint_dir=_run_dir(checkpoint_dir, kind, seed), stage=f"{kind} {seed + 1}",
                      metric_prefix=f"{kind}{seed + 1}", loss_fn=plan.loss_fn if taught else None,
                      evaluate_fn=plan.evaluate_fn if taught else None, score_name=plan.score if taught else "accuracy",
                      measure_ranks=not any(outcomes.values()))
        if taught and all(outcome.best_val_accuracy > o.best_val_accuracy for o in outcomes[kind]):
            best = student  # only the best distilled student is kept in memory
        outcomes[kind].append(outcome)
        if plan.teacher_accuracy is not None:
            report.metric("teacher/val_accuracy", outcome.steps, plan.teacher_accuracy)
        schedule.next_slice()
    notes += student_notes
    summary = _summary(outcomes, plan, config)
    return RecipeResult(
        model=best, backend=f"knowledge distillation (temperature {config.temperature:g}, alpha {config.alpha:g}) "
                            f"into a {config.student} {_student_name(best, student_architecture)}",
        notes=notes + [summary["verdict"]], architecture=student_architecture,
        extras={"distill": {**summary, "student_architecture": student_architecture},
                **distributed_extras([outcome.distributed for kind in outcomes for outcome in outcomes[kind]])})


@dataclasses.dataclass
class _Plan:
    """What the students learn from and how they are judged, given the loss and whether the dataset has labels."""
    loss_fn: Any
    evaluate_fn: Any  # None: cross-entropy and accuracy on the validation labels
    score: str  # what the validation score is: accuracy, agreement (with the teacher's top class) or cosine
    teacher_accuracy: float | None
    baseline: bool  # train the same students on the labels alone too
    notes: list[str]
    hint_width: int = 0  # with the hint loss: the width of the teacher's features the students' are projected onto

    @classmethod
    def of(cls, teacher: Any, data: DataSplits, example: torch.Tensor, config: DistillConfig) -> "_Plan":
        labelled = data.train_y is not None and data.val_y is not None
        notes = []
        if config.loss == SOFT_TARGETS:
            alpha = config.alpha if labelled else 1.0
            if not labelled:
                notes.append("the dataset has no labels: the students learn from the teacher alone (alpha 1) and "
                              "are judged by their agreement with the teacher's top class")
            loss_fn = distillation_loss(teacher, config.temperature, alpha)
        else:
            loss_fn = output_matching_loss(teacher, config.loss)
        judged_by_labels = labelled and config.loss == SOFT_TARGETS
        evaluate_fn = None if judged_by_labels else teacher_judge(teacher, data, example, config.loss, loss_fn)
        baseline = config.compare_without_teacher and judged_by_labels
        if config.compare_without_teacher and not baseline:
            notes.append("no comparison with students trained without the teacher: " + (
                "it needs labels to learn from" if not labelled else "matched outputs have no labels to learn"))
        accuracy = _teacher_accuracy(teacher, data, example) if judged_by_labels else None
        hint_width = 0
        if config.hint_weight > 0:  # judged as without it; trained with it
            layer = last_linear(teacher, "teacher")
            loss_fn, hint_width = hinted_loss(loss_fn, FeatureCatcher(layer), config.hint_weight), layer.in_features
            notes.append(f"hint loss (weight {config.hint_weight:g}): the students' features before their classifier, "
                         f"projected onto the teacher's {hint_width}, match the teacher's")
        return cls(loss_fn, evaluate_fn, "accuracy" if judged_by_labels else score_name(config.loss), accuracy,
                   baseline, notes, hint_width)


def _new_student(teacher: Any, config: DistillConfig, architecture: dict | None, models: dict, seed: int
                 ) -> tuple[nn.Module, dict, list[str]]:
    if config.student == UPLOADED:
        return _uploaded_student(models.get(STUDENT_ROLE))
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # a built-in student's random start belongs to its seed
        if config.student == THINNER_COPY:
            return thinner_copy(teacher, architecture, config.student_width, config.student_depth)
        spec = config.student_spec()
        return build_model(spec.architecture, spec), {"name": spec.architecture, "config": spec.to_dict()}, []


def _student_name(student: nn.Module, architecture: dict | None) -> str:
    if architecture is not None:
        return architecture["name"]
    folder = getattr(student, "folder", None)  # a transformers student keeps its teacher's class
    return folder.architecture if folder is not None else type(student).__name__


def _uploaded_student(entry: dict | None) -> tuple[nn.Module, dict, list[str]]:
    """A fresh copy of the uploaded student for each run: every seed starts from its uploaded weights."""
    if entry is None:
        raise RecipeError("the settings name an uploaded student, but the job was given none")
    if entry["format"] != "safetensors" or not entry["architecture"]:
        raise RecipeError(UPLOADED_STUDENT)
    return copy.deepcopy(entry["model"]), entry["architecture"], []


def _settings(config: DistillConfig, seed: int):
    return dataclasses.replace(config.to_train_settings(), seed=config.seed + seed)


def _run_dir(checkpoint_dir: str | None, kind: str, seed: int) -> str | None:
    """Each student keeps its own checkpoints: a retried job resumes every one where it stopped."""
    return None if checkpoint_dir is None else os.path.join(checkpoint_dir, f"distill-{kind}-{seed}")


def _check_outputs(teacher: Any, student: nn.Module, example: torch.Tensor) -> None:
    usable, reason = trainable(student)
    if not usable:
        raise RecipeError(reason)
    try:
        student.eval()
        with torch.no_grad():
            student_out = student(example)
    except Exception as error:  # noqa: BLE001 - whatever the student raises, it does not take the input
        raise RecipeError(f"the student does not take the teacher's input of shape {list(example.shape)}: "
                          f"{first_line(error)}; set student_config to fit it") from error
    teacher_out = teacher_logits(teacher, example)
    if student_out.shape != teacher_out.shape:
        raise RecipeError(f"the student gives outputs of shape {list(student_out.shape)} and the teacher "
                          f"{list(teacher_out.shape)}: give the student as many classes as the teacher "
                          f"(num_classes {teacher_out.shape[-1]})")


@torch.no_grad()
def _teacher_accuracy(teacher: Any, data: DataSplits, example: torch.Tensor, batch: int = 256) -> float:
    correct = 0
    for start in range(0, len(data.val_x), batch):
        inputs = fit_to_input(data.val_x[start:start + batch], tuple(example.shape), data.input_dtype)
        logits = teacher_logits(teacher, inputs)
        correct += int((logits.argmax(dim=1) == data.val_y[start:start + batch]).sum())
    return correct / len(data.val_x)


def _spread(values: list[float]) -> dict[str, Any]:
    return {"accuracies": [round(v, 4) for v in values], "mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else None}


def _summary(outcomes: dict[str, list[TrainOutcome]], plan: "_Plan", config: DistillConfig) -> dict[str, Any]:
    """Mean and spread of the best validation score of each run kind, and the plain verdict on the teacher."""
    students = _spread([outcome.best_val_accuracy for outcome in outcomes["student"]])
    teacher = plan.teacher_accuracy
    summary = {"score": plan.score, "teacher_accuracy": round(teacher, 4) if teacher is not None else None,
               "students": students, "seeds": config.seeds,
               "student_share_of_teacher": round(students["mean"] / teacher, 4) if teacher else None}
    if not outcomes["no_teacher"]:
        reference = f" (teacher {teacher:.2%})" if teacher is not None else ""
        summary["verdict"] = (f"distilled student: {_percent(students)} validation {plan.score}{reference}; not "
                              f"compared with a student trained without the teacher")
        return summary
    baseline = _spread([outcome.best_val_accuracy for outcome in outcomes["no_teacher"]])
    gain = students["mean"] - baseline["mean"]
    noise = max(students["std"] or 0.0, baseline["std"] or 0.0)
    if config.seeds == 1:
        judgement = "one seed each, so the spread between seeds is unknown: run more seeds to tell"
    elif abs(gain) <= noise:
        judgement = "within the spread between seeds: the teacher made no measurable difference"
    else:
        judgement = "more than the spread between seeds: the teacher " + ("helped" if gain > 0 else "hurt")
    summary.update(no_teacher=baseline, gain_points=round(100 * gain, 2), verdict=(
        f"distilled student {_percent(students)}, same student without the teacher {_percent(baseline)} "
        f"(validation accuracy over {config.seeds} seed(s)): {100 * gain:+.2f} points, {judgement}"))
    return summary


def _percent(spread: dict[str, Any]) -> str:
    return f"{spread['mean']:.2%}" + (f" ± {spread['std']:.2%}" if spread["std"] is not None else "")
