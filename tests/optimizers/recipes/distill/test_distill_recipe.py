"""Distillation on the digits: students with and without the teacher, on several seeds, reported as measured."""
import dataclasses
import statistics

import pytest
import torch

from optimizers.configs.distill import DistillConfig
from optimizers.errors import RecipeError
from optimizers.recipes.distill.recipe import distill
from optimizers.reporters import ListReporter
from optimizers.training.loop import TrainSettings, evaluate, fit
from optimizers.zoo.models import build_model

TEACHER = {"name": "mlp", "config": {"hidden": [128, 64]}}
EXAMPLE = torch.zeros(1, 64)


@pytest.fixture(scope="module")
def teacher(digits):
    torch.manual_seed(0)
    model = build_model(TEACHER["name"], TEACHER["config"])
    fit(model, digits, (1, 64), TrainSettings(epochs=6))
    return model


def test_students_with_and_without_the_teacher_are_reported_as_measured(teacher, digits):
    before = {name: tensor.clone() for name, tensor in teacher.state_dict().items()}
    report = ListReporter()
    config = DistillConfig(student_config='{"hidden": [16]}', epochs=3, seeds=2)
    result = distill(teacher, digits, config, report, example=EXAMPLE)

    summary = result.extras["distill"]
    assert summary["teacher_accuracy"] == round(evaluate(teacher, digits.val_x, digits.val_y, (1, 64))[1], 4)
    for kind in ("students", "no_teacher"):
        accuracies = summary[kind]["accuracies"]
        assert len(accuracies) == 2 and all(0 < value <= 1 for value in accuracies)
        assert summary[kind]["mean"] == pytest.approx(statistics.fmean(accuracies), abs=1e-4)
        assert summary[kind]["std"] == pytest.approx(statistics.stdev(accuracies), abs=1e-4)
    gain = summary["students"]["mean"] - summary["no_teacher"]["mean"]
    assert summary["gain_points"] == pytest.approx(100 * gain, abs=0.02)
    noise = max(summary["students"]["std"], summary["no_teacher"]["std"])
    expected = "no measurable difference" if abs(gain) <= noise else ("helped" if gain > 0 else "hurt")
    assert expected in summary["verdict"] and result.notes[-1] == summary["verdict"]

    # The kept student is the best distilled one, a quarter of the teacher's size at most, and it runs.
    student_params = sum(p.numel() for p in result.model.parameters())
    assert student_params * 4 <= sum(p.numel() for p in teacher.parameters())
    assert evaluate(result.model, digits.val_x, digits.val_y, (1, 64))[1] == pytest.approx(
        max(summary["students"]["accuracies"]), abs=1e-4)
    assert result.architecture == summary["student_architecture"] == {
        "name": "mlp", "config": {"in_features": 64, "hidden": [16], "num_classes": 10, "dropout": 0.1}}

    # Every run has its own curves, with the teacher's accuracy as the reference line; the teacher is untouched.
    names = {event["name"] for event in report.events if event["kind"] == "metric"}
    assert {"student1/val_accuracy", "student2/val_accuracy", "no_teacher1/val_accuracy",
            "no_teacher2/val_accuracy", "teacher/val_accuracy"} <= names
    assert all(torch.equal(before[name], tensor) for name, tensor in teacher.state_dict().items())


def test_a_thinner_copy_starts_from_the_teacher_and_keeps_its_architecture(teacher, digits):
    config = DistillConfig(student="thinner_copy", student_width=0.25, epochs=1, seeds=1,
                           compare_without_teacher=False)
    result = distill(teacher, digits, config, ListReporter(), example=EXAMPLE, architecture=TEACHER)
    assert result.architecture["config"]["hidden"] == [32, 16]
    assert "not compared with a student trained without the teacher" in result.extras["distill"]["verdict"]


def test_a_student_with_other_classes_is_refused_with_the_teachers_count(teacher, digits):
    config = DistillConfig(student_config='{"hidden": [16], "num_classes": 3}', epochs=1)
    with pytest.raises(RecipeError, match=r"as many classes as the teacher \(num_classes 10\)"):
        distill(teacher, digits, config, ListReporter(), example=EXAMPLE)


def test_a_student_that_cannot_take_the_input_is_refused_before_training(teacher, digits):
    config = DistillConfig(student_architecture="small_cnn", student_config='{"in_channels": 3}', epochs=1)
    with pytest.raises(RecipeError, match="does not take the teacher's input"):
        distill(teacher, digits, config, ListReporter(), example=EXAMPLE)


def test_distillation_needs_a_dataset(teacher):
    with pytest.raises(RecipeError, match="choose one for this experiment"):
        distill(teacher, None, DistillConfig(), ListReporter(), example=EXAMPLE)


def test_without_labels_the_student_learns_from_the_teacher_alone(teacher, digits):
    unlabelled = dataclasses.replace(digits, train_y=None, val_y=None)
    report = ListReporter()
    config = DistillConfig(student_config='{"hidden": [16]}', epochs=2, seeds=1)
    result = distill(teacher, unlabelled, config, report, example=EXAMPLE)
    summary = result.extras["distill"]
    assert summary["score"] == "agreement" and summary["teacher_accuracy"] is None and "no_teacher" not in summary
    assert any("no labels: the students learn from the teacher alone" in note for note in result.notes)
    # The score is the student's top-1 agreement with the teacher on the validation split, as measured here
    with torch.no_grad():
        agreement = float((result.model(digits.val_x.reshape(-1, 64)).argmax(1)
                           == teacher(digits.val_x.reshape(-1, 64)).argmax(1)).float().mean())
    assert summary["students"]["mean"] == pytest.approx(agreement, abs=1e-4)
    names = {event["name"] for event in report.events if event["kind"] == "metric"}
    assert "student1/val_agreement" in names and "teacher/val_accuracy" not in names


@pytest.mark.parametrize("loss", ["cosine", "mse"])
def test_embedding_outputs_are_matched_and_judged_by_cosine(digits, loss):
    torch.manual_seed(0)
    embedder = build_model("mlp", {"hidden": [64], "num_classes": 16})  # 16 numbers out: an embedding, no classes
    config = DistillConfig(student_config='{"hidden": [32], "num_classes": 16}', loss=loss, epochs=3, seeds=1)
    result = distill(embedder, digits, config, ListReporter(), example=EXAMPLE)
    summary = result.extras["distill"]
    assert summary["score"] == "cosine" and "no_teacher" not in summary
    with torch.no_grad():
        inputs = digits.val_x.reshape(-1, 64)
        cosine = float(torch.nn.functional.cosine_similarity(result.model(inputs), embedder(inputs)).mean())
    assert summary["students"]["mean"] == pytest.approx(cosine, abs=1e-4)
    assert any("matched outputs have no labels to learn" in note for note in result.notes)


def test_any_loaded_teacher_can_teach_a_builtin_student(teacher, digits):
    scripted = torch.jit.trace(teacher, EXAMPLE)
    result = distill(scripted, digits, DistillConfig(student_config='{"hidden": [8]}', epochs=1,
                                                     compare_without_teacher=False), ListReporter(), example=EXAMPLE)
    assert result.extras["distill"]["students"]["mean"] > 0.1


def test_an_uploaded_student_trains_from_its_own_weights_on_every_seed(teacher, digits):
    torch.manual_seed(1)
    uploaded = build_model("mlp", {"hidden": [16]})
    fit(uploaded, digits, (1, 64), TrainSettings(epochs=2))
    weights = {name: tensor.clone() for name, tensor in uploaded.state_dict().items()}
    architecture = {"name": "mlp", "config": {"hidden": [16]}}
    models = {"student": {"model": uploaded, "format": "safetensors", "architecture": architecture}}
    config = DistillConfig(student="uploaded", student_model=5, epochs=1, seeds=2, compare_without_teacher=False)
    result = distill(teacher, digits, config, ListReporter(), example=EXAMPLE, models=models)
    assert result.architecture == architecture
    assert all(torch.equal(weights[name], tensor) for name, tensor in uploaded.state_dict().items())  # copies trained
    assert not all(torch.equal(weights[name], tensor) for name, tensor in result.model.state_dict().items())
    scripted = {"student": {"model": torch.jit.trace(uploaded, EXAMPLE), "format": "torchscript", "architecture": None}}
    with pytest.raises(RecipeError, match="state dict"):
        distill(teacher, digits, config, ListReporter(), example=EXAMPLE, models=scripted)
