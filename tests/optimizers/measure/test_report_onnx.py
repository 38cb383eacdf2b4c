"""MACs and weights of ONNX models, counted from the graph (onnxruntime runs outside torch's sight)."""

import warnings

import numpy
import onnxruntime
import pytest
import torch
from torch import nn

from optimizers.measure.onnx_macs import onnx_macs, onnx_nonzero_parameters
from optimizers.measure.report import measure_model, reference_outputs
from tests.optimizers.measure.test_report import CONV_MACS, MLP64_MACS, MLP64_PARAMS, conv8, mlp64


def export_onnx(model: nn.Module, example: torch.Tensor, path, dynamic_batch: bool = True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated but fast (0.1 s, not 3 s)
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}} if dynamic_batch else None)
    return path


class StandInOnnxModel:
    """What contract 3's OnnxModel offers (a call with tensors, onnx_path, parameter_count), for these tests
    to run whether or not optimizers.formats.onnx_model is there yet."""

    def __init__(self, path) -> None:
        self.onnx_path = str(path)
        self.session = onnxruntime.InferenceSession(self.onnx_path, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"x": x.numpy()})[0])

    def parameter_count(self) -> int:
        import onnx

        return sum(int(numpy.prod(t.dims)) for t in onnx.load(self.onnx_path).graph.initializer)


def test_onnx_macs_by_hand(tmp_path):
    mlp = export_onnx(mlp64(), torch.randn(1, 64), tmp_path / "mlp.onnx")
    assert onnx_macs(mlp, (1, 64)) == (MLP64_MACS, None)
    assert onnx_macs(mlp, (32, 64)) == (32 * MLP64_MACS, None)  # the symbolic batch is pinned to the input's
    conv = export_onnx(conv8(), torch.randn(1, 1, 8, 8), tmp_path / "conv.onnx")
    assert onnx_macs(conv, (1, 1, 8, 8)) == (CONV_MACS, None)


def test_onnx_nonzero_parameters_read_the_initializers(tmp_path):
    model = mlp64()
    with torch.no_grad():
        model[2].weight[:5].zero_()
    path = export_onnx(model, torch.randn(1, 64), tmp_path / "mlp.onnx")
    assert onnx_nonzero_parameters(path) == MLP64_PARAMS - 5 * 256


def test_an_unreadable_onnx_file_gives_a_note_not_a_failure(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all")
    macs, note = onnx_macs(broken, (1, 64))
    assert macs is None and note.startswith("MACs could not be counted from the ONNX graph")


@pytest.mark.parametrize("dynamic_batch", [True, False])
def test_measure_an_onnx_model(dynamic_batch, tmp_path):
    example = torch.randn(1, 64)
    path = export_onnx(mlp64(), example, tmp_path / "mlp.onnx", dynamic_batch)
    report = measure_model(StandInOnnxModel(path), example, path, reference=reference_outputs(mlp64(), example),
                           time_budget_s=10)
    assert (report["params"], report["nonzero_params"], report["macs"]) == (MLP64_PARAMS, MLP64_PARAMS, MLP64_MACS)
    assert report["output_error"]["max_abs"] < 1e-5 and report["agreement_top1"] == 1.0
    if dynamic_batch:
        assert report["latency_ms"]["batch_32"]["p50"] > 0
    else:
        assert report["latency_ms"]["batch_32"] is None and "batch of 32" in report["latency_note"]


def test_measure_the_real_onnx_model_class(tmp_path):
    onnx_model = pytest.importorskip("optimizers.formats.onnx_model", reason="FORMATS' OnnxModel is not there yet")
    example = torch.randn(1, 64)
    path = export_onnx(mlp64(), example, tmp_path / "mlp.onnx")
    model = onnx_model.OnnxModel(str(path))
    report = measure_model(model, example, path, time_budget_s=10)
    assert (report["params"], report["macs"]) == (MLP64_PARAMS, MLP64_MACS)
