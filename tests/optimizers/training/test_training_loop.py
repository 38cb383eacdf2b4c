"""The loop's settings and hooks: early stopping, SGD and the schedules, loss_fn and after_step, refusals."""
import math

import pytest
import torch
from torch import nn

from optimizers.configs.finetune import FineTuneSettings, TrainSettings
from optimizers.data.splits import DataSplits
from optimizers.errors import Cancelled, ConfigError, RecipeError
from optimizers.reporters import ListReporter
from optimizers.training.loop import evaluate, fit
from optimizers.training.setup import build_optimizer, learning_rate_factor
from optimizers.zoo.models import build_model

MLP_SHAPE = (1, 64)




def wrong_labels_loss(model, inputs, labels):
    """Teaches the next digit's label: the validation loss (on the true labels) rises every epoch."""
    return nn.functional.cross_entropy(model(inputs), (labels + 1) % 10)


def test_early_stopping_stops_and_keeps_the_best_epoch(digits):
    model = build_model("mlp", {})
    settings = FineTuneSettings(epochs=10, early_stopping_patience=2, learning_rate=3e-3)
    report = ListReporter()
    outcome = fit(model, digits, MLP_SHAPE, settings, report, loss_fn=wrong_labels_loss)
    assert outcome.stopped_early and outcome.epochs_run == 3 and outcome.best_epoch == 1
    assert [entry["epoch"] for entry in outcome.history] == [1, 2, 3]
    val_loss, val_accuracy = evaluate(model, digits.val_x, digits.val_y, MLP_SHAPE)
    assert (val_loss, val_accuracy) == (outcome.history[0]["val_loss"], outcome.history[0]["val_accuracy"])
    assert any("stopped early after epoch 3" in event.get("message", "") for event in report.events)


def test_patience_zero_trains_every_epoch(digits):
    outcome = fit(build_model("mlp", {}), digits, MLP_SHAPE, FineTuneSettings(epochs=3, early_stopping_patience=0),
                  loss_fn=wrong_labels_loss)
    assert not outcome.stopped_early and outcome.epochs_run == 3 and outcome.best_epoch == 1


def test_loss_fn_and_after_step_are_called_every_step(digits):
    calls, steps = [], []

    def loss_fn(model, inputs, labels):
        calls.append((tuple(inputs.shape), tuple(labels.shape)))
        return nn.functional.cross_entropy(model(inputs), labels)

    outcome = fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=2, batch_size=256),
                  loss_fn=loss_fn, after_step=steps.append, step_offset=7)
    per_epoch = -(-len(digits.train_x) // 256)
    assert len(calls) == 2 * per_epoch and calls[0] == ((256, 64), (256,))
    assert steps == list(range(8, 8 + 2 * per_epoch)) and outcome.steps == 7 + 2 * per_epoch
    # The model's own output, caught on its way to the loss, still gives the train accuracy.
    assert 0.0 <= outcome.history[-1]["train_accuracy"] <= 1.0


def test_sgd_with_the_step_schedule_learns_and_decays_at_half_and_three_quarters(digits):
    settings = FineTuneSettings(optimizer="sgd", learning_rate=0.1, momentum=0.9, lr_schedule="step", epochs=4,
                                early_stopping_patience=0)
    model = build_model("mlp", {})
    optimizer = build_optimizer(model, settings)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["momentum"] == 0.9
    outcome = fit(model, digits, MLP_SHAPE, settings)
    rates = [entry["learning_rate"] for entry in outcome.history]  # each epoch's rate at its first step
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.001])
    assert outcome.best_val_accuracy > 0.8


def test_schedules_as_functions_of_the_step():
    assert [learning_rate_factor("constant", step, 10) for step in (0, 9)] == [1.0, 1.0]
    assert learning_rate_factor("cosine", 0, 10) == 1.0 and learning_rate_factor("cosine", 5, 10) == pytest.approx(0.5)
    assert learning_rate_factor("cosine", 10, 10) == pytest.approx(0.0)
    assert [learning_rate_factor("step", step, 8) for step in (3, 4, 5, 6, 7)] == pytest.approx(
        [1.0, 0.1, 0.1, 0.01, 0.01])


def test_cancellation_is_checked_before_each_step(digits):
    report = ListReporter()
    report.cancel_requested = True
    with pytest.raises(Cancelled):
        fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=1), report)


def test_a_diverged_loss_stops_with_a_reason(digits):
    def exploding(model, inputs, labels):
        return model(inputs).sum() * math.nan

    with pytest.raises(RecipeError, match="training loss became nan at step .*learning_rate"):
        fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=1), loss_fn=exploding)


def test_data_without_labels_is_refused(digits):
    unlabeled = DataSplits(digits.train_x, None, digits.val_x, None)
    with pytest.raises(RecipeError, match="needs a dataset with labels"):
        fit(build_model("mlp", {}), unlabeled, MLP_SHAPE)


def test_the_caller_s_random_generator_is_left_as_it_was(digits):
    model = build_model("mlp", {})
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    fit(model, digits, MLP_SHAPE, TrainSettings(epochs=1, batch_size=512))
    assert torch.equal(torch.rand(3), expected)


def test_settings_are_validated_and_described_for_forms():
    with pytest.raises(ConfigError, match="optimizer: must be one of adamw, sgd"):
        FineTuneSettings(optimizer="adam")
    with pytest.raises(ConfigError, match="learning_rate: must be at least"):
        FineTuneSettings(learning_rate=0.0)
    fields = {field["name"]: field for field in FineTuneSettings.describe_fields()}
    assert set(fields) == {"optimizer", "learning_rate", "momentum", "weight_decay", "lr_schedule", "epochs",
                           "batch_size", "early_stopping_patience", "seed", "ranks"}
    assert all(field["help"] for field in fields.values())
    assert fields["lr_schedule"]["choices"] == ["cosine", "step", "constant"] and fields["epochs"]["min"] == 1
    assert TrainSettings().to_train_settings() == FineTuneSettings(learning_rate=3e-3, epochs=10,
                                                                   early_stopping_patience=0)
