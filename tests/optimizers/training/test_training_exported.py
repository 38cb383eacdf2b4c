"""What the loop trains besides eager modules: torch.export graph modules yes, TorchScript and ONNX no."""
import pytest
import torch
from torch.export import Dim

from optimizers.errors import RecipeError
from optimizers.reporters import ListReporter
from optimizers.training.loop import TrainSettings, evaluate, fit, trainable
from optimizers.training.modes import fixed_batch, mode_notes, set_training
from optimizers.zoo.models import build_model

CNN_SHAPE = (1, 1, 8, 8)




def exported(name: str, batch: int = 2, dynamic: bool = True) -> torch.fx.GraphModule:
    torch.manual_seed(0)
    shapes = ({0: Dim("batch", min=1)},) if dynamic else None
    return torch.export.export(build_model(name, {}), (torch.randn(batch, 1, 8, 8),), dynamic_shapes=shapes).module()


def test_an_exported_cnn_trains_with_batch_norm_learning_its_statistics(digits):
    model = exported("small_cnn")
    for parameter in model.parameters():
        parameter.requires_grad_(False)  # as a loaded program may arrive: fit makes them trainable
    statistics = model.get_buffer("features.1.running_mean").clone()
    _, before = evaluate(model, digits.val_x, digits.val_y, CNN_SHAPE)
    outcome = fit(model, digits, CNN_SHAPE, TrainSettings(epochs=2))
    assert before < 0.3 and outcome.best_val_accuracy > 0.8 and outcome.notes == []
    assert not torch.equal(model.get_buffer("features.1.running_mean"), statistics)
    # Left in inference mode: batch norm uses its statistics, so a sample's output does not depend on its batch.
    sample = digits.val_x[:1].reshape(1, 1, 8, 8)
    alone, in_batch = model(sample), model(torch.cat([sample, digits.val_x[1:4].reshape(3, 1, 8, 8)]))[:1]
    assert torch.allclose(alone, in_batch, atol=1e-5)


def test_set_training_switches_an_exported_graph_s_dropout():
    model = exported("mlp")  # Dropout(0.1) after each hidden layer
    inputs = torch.randn(64, 1, 8, 8)
    set_training(model, True)
    assert not torch.equal(model(inputs), model(inputs)) and model.training
    set_training(model, False)
    assert torch.equal(model(inputs), model(inputs)) and not model.training


def test_a_fixed_batch_program_trains_and_evaluates_in_batches_of_its_size(digits):
    model = exported("small_cnn", batch=100, dynamic=False)
    assert fixed_batch(model) == 100 and fixed_batch(exported("small_cnn")) is None
    report = ListReporter()
    outcome = fit(model, digits, CNN_SHAPE, TrainSettings(epochs=2, learning_rate=1e-2), report)
    assert outcome.best_val_accuracy > 0.6 and outcome.steps == 2 * (len(digits.train_x) // 100)
    assert any("takes only batches of 100" in note for note in outcome.notes)
    assert any("takes only batches of 100" in event.get("message", "") for event in report.events)
    assert len(digits.val_x) % 100 != 0  # so the last evaluation batch was padded
    assert evaluate(model, digits.val_x, digits.val_y, CNN_SHAPE)[1] == outcome.best_val_accuracy


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch's own, from run_decompositions
def test_a_decomposed_program_trains_with_its_batch_norm_statistics_frozen(digits):
    torch.manual_seed(0)
    program = torch.export.export(build_model("small_cnn", {}), (torch.randn(2, 1, 8, 8),),
                                  dynamic_shapes=({0: Dim("batch", min=1)},)).run_decompositions()
    model = program.module()
    assert mode_notes(model) and "statistics stay" in mode_notes(model)[0]
    before, _ = evaluate(model, digits.val_x, digits.val_y, CNN_SHAPE)
    outcome = fit(model, digits, CNN_SHAPE, TrainSettings(epochs=1))
    assert outcome.notes == mode_notes(model) and outcome.history[0]["val_loss"] < before


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # torch.ao's deprecation notices
def test_torchscript_and_onnx_models_are_refused_with_the_reason():
    scripted = torch.jit.script(build_model("mlp", {}))
    usable, reason = trainable(scripted)
    assert not usable and "TorchScript" in reason and "safetensors" in reason
    usable, reason = trainable(torch.jit.freeze(scripted))
    assert not usable and "frozen TorchScript" in reason and "constants" in reason

    class OnnxModel:  # stands in for optimizers.formats.onnx_model.OnnxModel: callable, not an nn.Module
        pass

    usable, reason = trainable(OnnxModel())
    assert not usable and "onnxruntime" in reason
    quantized = torch.ao.quantization.quantize_dynamic(build_model("mlp", {}), {torch.nn.Linear}, dtype=torch.qint8)
    assert trainable(quantized) == (False, "the model has no floating-point parameters to train (quantized or "
                                           "parameter-free)")
    assert trainable(build_model("mlp", {})) == (True, "") and trainable(exported("mlp")) == (True, "")
    with pytest.raises(RecipeError, match="TorchScript"):
        fit(scripted, None, (1, 64))
