"""The shared fine-tuning loop learns real data (scikit-learn's digits) and keeps its best epoch."""
from optimizers.data.job import load_digits_dataset, write_dataset
from optimizers.data.splits import load_splits
from optimizers.reporting import ListReporter
from optimizers.training import TrainSettings, evaluate, fit
from optimizers.zoo.models import build_model


def test_a_small_cnn_learns_digits_and_reports_each_epoch(tmp_path):
    write_dataset(load_digits_dataset(), tmp_path)
    splits = load_splits(tmp_path / "dataset.npz")
    model = build_model("small_cnn", {})
    _, before = evaluate(model, splits.val_x, splits.val_y, (1, 1, 8, 8))
    report = ListReporter()
    outcome = fit(model, splits, (1, 1, 8, 8), TrainSettings(epochs=3), report)
    _, after = evaluate(model, splits.val_x, splits.val_y, (1, 1, 8, 8))
    assert before < 0.3 and after > 0.85 and after == outcome.best_val_accuracy
    metrics = [e for e in report.events if e["kind"] == "metric"]
    assert {e["name"] for e in metrics} == {"fine-tune/train_loss", "fine-tune/val_loss", "fine-tune/val_accuracy"}
    assert [h["epoch"] for h in outcome.history] == [1, 2, 3]
