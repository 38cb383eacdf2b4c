"""The loop on a CUDA model: batches follow the model to its device, and a resumed run matches an uninterrupted one."""
import pytest
import torch

from optimizers.configs.finetune import FineTuneSettings
from optimizers.errors import Cancelled
from optimizers.reporters import ListReporter
from optimizers.training.loop import evaluate, fit
from optimizers.zoo.models import build_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
SETTINGS = FineTuneSettings(epochs=3, batch_size=128, learning_rate=3e-3, early_stopping_patience=0)




def cuda_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("small_cnn", {}).to("cuda")


class CancelAfterFirstEpoch(ListReporter):
    def metric(self, name: str, step: int, value: float) -> None:
        super().metric(name, step, value)
        self.cancel_requested = self.cancel_requested or name.endswith("/val_accuracy")


def test_a_cuda_model_learns_and_resumes_from_its_checkpoint(digits, tmp_path):
    uninterrupted = cuda_cnn()
    expected = fit(uninterrupted, digits, (1, 1, 8, 8), SETTINGS)
    assert expected.best_val_accuracy > 0.85 and next(uninterrupted.parameters()).is_cuda

    with pytest.raises(Cancelled):
        fit(cuda_cnn(), digits, (1, 1, 8, 8), SETTINGS, CancelAfterFirstEpoch(), checkpoint_dir=tmp_path)
    resumed = cuda_cnn()
    outcome = fit(resumed, digits, (1, 1, 8, 8), SETTINGS, checkpoint_dir=tmp_path)
    assert outcome.resumed_from_epoch == 1 and outcome.epochs_run == 3
    # cuDNN may pick different kernels run to run: close, not necessarily bit-equal.
    for entry, reference in zip(outcome.history, expected.history, strict=True):
        assert entry["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-3, abs=1e-4)
    _, accuracy = evaluate(resumed, digits.val_x, digits.val_y, (1, 1, 8, 8))
    assert accuracy == pytest.approx(expected.best_val_accuracy, abs=0.01)
