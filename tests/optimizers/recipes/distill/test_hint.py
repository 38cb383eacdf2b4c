"""The feature (hint) loss: a projection trained with the student, then dropped; refused where layers are hidden."""
import pytest
import torch
from torch import nn

from optimizers.configs.distill import DistillConfig
from optimizers.errors import RecipeError
from optimizers.recipes.distill.hint import FeatureCatcher, HintedStudent, hinted_loss, last_linear
from optimizers.recipes.distill.loss import distillation_loss
from optimizers.recipes.distill.recipe import distill
from optimizers.reporters import ListReporter
from optimizers.training.loop import TrainSettings, fit
from optimizers.zoo.models import build_model

EXAMPLE = torch.zeros(1, 64)


@pytest.fixture(scope="module")
def teacher(digits):
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [128, 64]})
    fit(model, digits, (1, 64), TrainSettings(epochs=4))
    return model


def test_the_hint_term_is_the_projected_features_distance(teacher):
    torch.manual_seed(0)
    hinted = HintedStudent(build_model("mlp", {"hidden": [16]}), teacher_width=64)
    base = distillation_loss(teacher, 4.0, 0.7)
    inputs, labels = torch.rand(8, 64), torch.randint(0, 10, (8,))
    catcher = FeatureCatcher(last_linear(teacher, "teacher"))
    with_hint = hinted_loss(base, catcher, weight=2.0)(hinted, inputs, labels)
    without = base(hinted, inputs, labels)
    # Our own features: the inputs of each model's last Linear, computed by running the layers before it.
    student_features = hinted.student.layers[:-1](inputs)
    teacher_features = teacher.eval().layers[:-1](inputs)
    expected = without + 2.0 * nn.functional.mse_loss(hinted.projection(student_features), teacher_features)
    torch.testing.assert_close(with_hint, expected)


def _first_train_loss(report: ListReporter) -> float:
    return next(e["value"] for e in report.events if e["kind"] == "metric" and e["name"].endswith("/train_loss"))


def test_distilling_with_a_hint_adds_its_term_and_keeps_the_student_as_it_was_built(teacher, digits):
    reports = {weight: ListReporter() for weight in (0.0, 1.0)}
    for weight, report in reports.items():
        config = DistillConfig(student_config='{"hidden": [16]}', epochs=1, hint_weight=weight,
                               compare_without_teacher=False)
        result = distill(teacher, digits, config, report, example=EXAMPLE)
    # The same seed, the same batches: the hinted run's loss carries the feature distance on top.
    assert _first_train_loss(reports[1.0]) > _first_train_loss(reports[0.0])
    assert set(result.model.state_dict()) == set(build_model("mlp", {"hidden": [16]}).state_dict())
    assert any("hint loss (weight 1): the students' features before their classifier, projected onto the "
               "teacher's 64" in note for note in result.notes)


def test_a_hint_on_two_replicas_stays_in_step(teacher, digits):
    torch.manual_seed(0)
    hinted = HintedStudent(build_model("mlp", {"hidden": [16]}), teacher_width=64)
    projection = hinted.projection.weight.detach().clone()
    loss = hinted_loss(distillation_loss(teacher, 4.0, 0.7), FeatureCatcher(last_linear(teacher, "teacher")), 1.0)
    outcome = fit(hinted, digits, (1, 64), TrainSettings(epochs=1, ranks=2), loss_fn=loss, measure_ranks=False)
    assert outcome.distributed["replica_checks"] == outcome.steps  # the projection is among the compared weights
    assert not torch.equal(hinted.projection.weight, projection)


def test_a_teacher_that_hides_its_layers_is_refused(teacher, digits):
    scripted = torch.jit.trace(teacher.eval(), EXAMPLE)
    config = DistillConfig(student_config='{"hidden": [16]}', epochs=1, hint_weight=1.0)
    with pytest.raises(RecipeError, match="the hint loss needs the teacher's layers, which a .* hides"):
        distill(scripted, digits, config, ListReporter(), example=EXAMPLE)


def test_a_student_without_a_linear_classifier_is_refused():
    convolutions = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
    with pytest.raises(RecipeError, match="the student has none; set hint_weight to 0"):
        HintedStudent(convolutions, teacher_width=64)
