"""Checkpoints: written atomically, and a run resumed from one ends where an uninterrupted run would have."""
import pickle

import pytest
import torch

from optimizers.configs.finetune import FineTuneSettings
from optimizers.errors import Cancelled, SpecError
from optimizers.job_spec import JobSpec
from optimizers.reporters import ListReporter
from optimizers.training.checkpoints import checkpoint_path, load_checkpoint, save_checkpoint
from optimizers.training.loop import fit
from optimizers.zoo.models import build_model

MLP_SHAPE = (1, 64)
# Dropout in the MLP and shuffling draw random numbers: equal results mean the generators were restored too.
SETTINGS = FineTuneSettings(epochs=4, batch_size=128, learning_rate=3e-3, early_stopping_patience=0)




def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", {})


class CancelAfterEpoch(ListReporter):
    """Asks to stop once `epoch` has reported its figures: the next step raises Cancelled, as a killed job stops."""

    def __init__(self, epoch: int, steps_per_epoch: int) -> None:
        super().__init__()
        self.stop_at_step = epoch * steps_per_epoch

    def metric(self, name: str, step: int, value: float) -> None:
        super().metric(name, step, value)
        if name.endswith("/val_accuracy") and step >= self.stop_at_step:
            self.cancel_requested = True


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                 strict=True))


def epoch_metrics(report: ListReporter) -> list[tuple[str, int]]:
    return [(event["name"], event["step"]) for event in report.events
            if event["kind"] == "metric" and event["name"].endswith("/val_loss")]


def test_an_interrupted_run_resumes_after_its_last_epoch_and_ends_as_an_uninterrupted_one(digits, tmp_path):
    steps_per_epoch = -(-len(digits.train_x) // SETTINGS.batch_size)
    uninterrupted = mlp()
    expected = fit(uninterrupted, digits, MLP_SHAPE, SETTINGS)

    interrupted = mlp()
    with pytest.raises(Cancelled):
        fit(interrupted, digits, MLP_SHAPE, SETTINGS, CancelAfterEpoch(2, steps_per_epoch), checkpoint_dir=tmp_path)
    retried, report = mlp(), ListReporter()  # a retried job starts from the uploaded model again
    outcome = fit(retried, digits, MLP_SHAPE, SETTINGS, report, checkpoint_dir=tmp_path)

    assert outcome.resumed_from_epoch == 2 and outcome.epochs_run == 4
    assert epoch_metrics(report) == [("fine-tune/val_loss", 3 * steps_per_epoch),
                                     ("fine-tune/val_loss", 4 * steps_per_epoch)]
    assert any("resuming from the checkpoint after epoch 2 of 4" in e.get("message", "") for e in report.events)
    assert outcome.history == expected.history and outcome.best_epoch == expected.best_epoch
    assert same_weights(retried, uninterrupted)


def test_a_finished_short_run_continues_when_asked_for_more_epochs(digits, tmp_path):
    constant = FineTuneSettings(**{**SETTINGS.to_dict(), "lr_schedule": "constant"})
    uninterrupted = mlp()
    expected = fit(uninterrupted, digits, MLP_SHAPE, constant)

    fit(mlp(), digits, MLP_SHAPE, FineTuneSettings(**{**constant.to_dict(), "epochs": 2}), checkpoint_dir=tmp_path)
    continued = mlp()
    outcome = fit(continued, digits, MLP_SHAPE, constant, checkpoint_dir=tmp_path)
    assert outcome.resumed_from_epoch == 2 and [entry["epoch"] for entry in outcome.history] == [1, 2, 3, 4]
    assert outcome.history == expected.history and same_weights(continued, uninterrupted)


def test_a_retried_job_whose_training_had_finished_does_not_train_again(digits, tmp_path):
    short = FineTuneSettings(**{**SETTINGS.to_dict(), "epochs": 2})
    first_model = mlp()
    first = fit(first_model, digits, MLP_SHAPE, short, checkpoint_dir=tmp_path)
    again_model, report = mlp(), ListReporter()
    again = fit(again_model, digits, MLP_SHAPE, short, report, checkpoint_dir=tmp_path)
    assert not [event for event in report.events if event["kind"] == "metric"]
    assert again.history == first.history and again.best_epoch == first.best_epoch
    assert same_weights(again_model, first_model)  # the best epoch's weights, from the checkpoint


def test_a_checkpoint_of_another_run_is_not_resumed(digits, tmp_path):
    fit(mlp(), digits, MLP_SHAPE, FineTuneSettings(**{**SETTINGS.to_dict(), "epochs": 1}), checkpoint_dir=tmp_path)
    report = ListReporter()
    other = FineTuneSettings(**{**SETTINGS.to_dict(), "epochs": 1, "learning_rate": 1e-2})
    outcome = fit(mlp(), digits, MLP_SHAPE, other, report, checkpoint_dir=tmp_path)
    assert outcome.resumed_from_epoch == 0 and "settings changed: learning_rate" in outcome.notes[0]
    cnn = build_model("small_cnn", {})
    outcome = fit(cnn, digits, (1, 1, 8, 8), other, checkpoint_dir=tmp_path)
    assert outcome.resumed_from_epoch == 0 and "layers or shapes differ" in outcome.notes[0]


def test_an_unreadable_checkpoint_means_starting_over(digits, tmp_path):
    checkpoint_path(tmp_path).write_bytes(b"not a checkpoint")
    outcome = fit(mlp(), digits, MLP_SHAPE, FineTuneSettings(**{**SETTINGS.to_dict(), "epochs": 1}),
                  checkpoint_dir=tmp_path)
    assert outcome.resumed_from_epoch == 0 and "cannot be read" in outcome.notes[0]
    assert load_checkpoint(tmp_path)[0]["run"]["epoch"] == 1  # and the new run's checkpoint replaced it


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_loading_never_runs_code_from_the_file(tmp_path, capsys):
    with open(checkpoint_path(tmp_path), "wb") as file:
        pickle.dump({"format": 1, "payload": Payload()}, file, protocol=2)
    state, problem = load_checkpoint(tmp_path)
    assert state is None and "cannot be read" in problem
    assert "must never run" not in capsys.readouterr().out


def test_a_write_that_fails_halfway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"run": {"epoch": 1}})

    def failing_save(state, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, {"run": {"epoch": 2}})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path)[0]["run"] == {"epoch": 1}
    assert [path.name for path in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind
    assert load_checkpoint(tmp_path / "missing") == (None, None)


def test_the_job_spec_carries_the_experiment_s_checkpoint_directory():
    base = {"action": "run", "model_path": "model.pt2", "input_shape": [1, 64], "out_dir": "out"}
    spec = JobSpec.from_dict({**base, "checkpoint_dir": "/var/checkpoints/42"})
    assert spec.checkpoint_dir == "/var/checkpoints/42" and spec.to_dict()["checkpoint_dir"] == "/var/checkpoints/42"
    assert JobSpec.from_dict(base).checkpoint_dir is None
    with pytest.raises(SpecError, match="checkpoint_dir must be a non-empty string"):
        JobSpec.from_dict({**base, "checkpoint_dir": 3})
