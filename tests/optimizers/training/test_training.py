"""The shared fine-tuning loop learns real data (scikit-learn's digits), keeps its best epoch, streams its figures."""

from optimizers.reporters import ListReporter
from optimizers.training.loop import LOSS_EVERY_STEPS, TrainSettings, evaluate, fit
from optimizers.zoo.models import build_model

CNN_SHAPE = (1, 1, 8, 8)




def test_a_small_cnn_learns_digits_and_keeps_its_best_epoch(digits):
    model = build_model("small_cnn", {})
    _, before = evaluate(model, digits.val_x, digits.val_y, CNN_SHAPE)
    outcome = fit(model, digits, CNN_SHAPE, TrainSettings(epochs=3), ListReporter())
    val_loss, after = evaluate(model, digits.val_x, digits.val_y, CNN_SHAPE)
    assert before < 0.3 and after > 0.85
    best = min(outcome.history, key=lambda entry: entry["val_loss"])
    assert outcome.best_epoch == best["epoch"] and (val_loss, after) == (best["val_loss"], best["val_accuracy"])
    assert after == outcome.best_val_accuracy and not model.training
    assert [entry["epoch"] for entry in outcome.history] == [1, 2, 3] and outcome.epochs_run == 3


def test_metrics_are_named_by_stage_at_the_step_index(digits):
    report = ListReporter()
    settings = TrainSettings(epochs=2, batch_size=100)
    outcome = fit(build_model("mlp", {}), digits, (1, 64), settings, report, stage="fine-tune")
    steps_per_epoch = -(-len(digits.train_x) // 100)
    assert outcome.steps == 2 * steps_per_epoch

    def steps_of(name):
        return [event["step"] for event in report.events if event["kind"] == "metric" and event["name"] == name]

    # The step-level loss every LOSS_EVERY_STEPS steps and at the end of each epoch (the mean since the last point).
    expected = sorted({*range(LOSS_EVERY_STEPS, 2 * steps_per_epoch + 1, LOSS_EVERY_STEPS),
                       steps_per_epoch, 2 * steps_per_epoch})
    assert steps_of("fine-tune/train_loss") == expected
    for measure in ("epoch_train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert steps_of(f"fine-tune/{measure}") == [steps_per_epoch, 2 * steps_per_epoch], measure
    names = {event["name"] for event in report.events if event["kind"] == "metric"}
    assert names == {"fine-tune/train_loss", "fine-tune/epoch_train_loss", "fine-tune/train_accuracy",
                     "fine-tune/val_loss", "fine-tune/val_accuracy"}
    assert report.events[0] == {"kind": "stage", "name": "fine-tune"}
    progress = [event for event in report.events if event["kind"] == "progress"]
    assert all(event["stage"] == "fine-tune" for event in progress)
    assert progress[-1]["done"] == progress[-1]["total"] == 2 * steps_per_epoch
    assert [event["done"] for event in progress] == sorted(event["done"] for event in progress)


def test_a_metric_prefix_and_a_step_offset_continue_another_run_s_chart(digits):
    report = ListReporter()
    outcome = fit(build_model("mlp", {}), digits, (1, 64), TrainSettings(epochs=1, batch_size=512), report,
                  stage="fine-tune 2 of 3", metric_prefix="prune", step_offset=100)
    metrics = [event for event in report.events if event["kind"] == "metric"]
    assert {event["name"].split("/")[0] for event in metrics} == {"prune"}
    assert min(event["step"] for event in metrics) == 100 + 3 == outcome.steps  # 3 steps of 512
    assert {"kind": "stage", "name": "fine-tune 2 of 3"} in report.events
