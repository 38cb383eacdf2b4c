"""OnnxModel and the checks an ONNX upload passes before onnxruntime opens it."""

import pytest
import torch

import optimizers.recipes  # noqa: F401 - registers the recipes
from optimizers.errors import ModelFileError, ModelInputError
from optimizers.formats.model_io import load_model
from optimizers.formats.onnx_checks import EXTERNAL_DATA_REFUSED, check_onnx_file
from optimizers.formats.onnx_model import OnnxModel
from optimizers.recipes.prune.recipe import ONNX_NOT_PRUNABLE
from optimizers.registry import applicability, recipe_names
from tests.optimizers import onnx_files


@pytest.fixture
def linear(tmp_path):
    return OnnxModel(onnx_files.linear_onnx(tmp_path / "linear.onnx"))


def test_called_with_tensors_it_returns_tensors(linear):
    x = torch.randn(5, 4)
    expected = x @ torch.arange(12.0).reshape(4, 3) + 1
    output = linear(x)
    assert isinstance(output, torch.Tensor) and output.dtype == torch.float32
    torch.testing.assert_close(output, expected)


def test_describes_itself(linear, tmp_path):
    assert linear.onnx_path == str(tmp_path / "linear.onnx")
    assert linear.input_names == ["x"] and linear.output_names == ["y"]
    assert linear.input_specs() == [{"name": "x", "shape": ["batch", 4], "type": "tensor(float)"}]
    assert linear.parameter_count() == 4 * 3 + 3
    assert linear.eval() is linear


def test_runs_with_torch_threads_and_one_inter_op_thread(tmp_path):
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = OnnxModel(onnx_files.linear_onnx(tmp_path / "linear.onnx"))
    finally:
        torch.set_num_threads(previous)
    options = model._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert model._session.get_providers() == ["CPUExecutionProvider"]


def test_several_outputs_come_back_as_a_tuple_and_int64_inputs_work(tmp_path):
    model = OnnxModel(onnx_files.two_output_onnx(tmp_path / "two.onnx"))
    doubled, total = model(torch.tensor([[1, 2, 3]]))
    torch.testing.assert_close(doubled, torch.tensor([[2.0, 4.0, 6.0]]))
    assert total.tolist() == [6] and total.dtype == torch.int64


def test_wrong_inputs_are_model_input_errors(linear):
    with pytest.raises(ModelInputError, match=r"takes 1 input\(s\) \(x\); got 2"):
        linear(torch.ones(1, 4), torch.ones(1, 4))
    with pytest.raises(ModelInputError, match="bfloat16"):
        linear(torch.ones(1, 4, dtype=torch.bfloat16))
    with pytest.raises(Exception, match="(?i)dimension|shape|invalid"):
        linear(torch.ones(1, 5))  # onnxruntime's own message; the job wraps it as ModelInputError


def test_recipes_do_not_apply_to_onnx_models(linear):
    report = applicability(linear)
    assert sorted(report) == recipe_names()
    assert report["prune"] == {"applicable": False, "reason": ONNX_NOT_PRUNABLE}
    assert report["quantize"]["applicable"] and report["quantize"]["variants"]["onnx_dynamic_int8"]["applicable"]
    assert not report["quantize"]["variants"]["dynamic_int8"]["applicable"]


def check_error(path) -> str:
    with pytest.raises(ModelFileError) as caught:
        check_onnx_file(path)
    return str(caught.value)


def test_initializer_with_external_data_is_refused(tmp_path):
    weight, _ = onnx_files._weights()
    model = onnx_files.model_of(onnx_files.linear_graph(onnx_files.external(weight)))
    path = onnx_files.save(model, tmp_path / "external.onnx")
    assert check_error(path) == EXTERNAL_DATA_REFUSED
    assert EXTERNAL_DATA_REFUSED == ("ONNX models that reference external data files are refused; "
                                     "save with all tensors inside the .onnx file")


def test_external_data_inside_a_subgraph_attribute_is_refused(tmp_path):
    assert check_error(onnx_files.if_with_external_branch(tmp_path / "if.onnx")) == EXTERNAL_DATA_REFUSED


def test_a_graph_without_nodes_is_refused(tmp_path):
    from onnx import helper

    path = onnx_files.save(onnx_files.model_of(helper.make_graph([], "empty", [], [])), tmp_path / "empty.onnx")
    assert check_error(path) == "not a valid ONNX model: it has no graph nodes (a truncated file, or not ONNX at all)"


def test_an_unknown_operator_fails_the_checker(tmp_path):
    model = onnx_files.model_of(onnx_files.linear_graph())
    model.graph.node[0].op_type = "NoSuchOp"
    message = check_error(onnx_files.save(model, tmp_path / "unknown.onnx"))
    assert message.startswith("not a valid ONNX model: onnx.checker refuses it: ") and "NoSuchOp" in message


def test_a_truncated_file_is_refused(tmp_path):
    whole = onnx_files.linear_onnx(tmp_path / "whole.onnx").read_bytes()
    path = tmp_path / "half.onnx"
    path.write_bytes(whole[: len(whole) // 2])
    assert check_error(path).startswith("not a valid ONNX model: the file is truncated or corrupt")
    with pytest.raises(ModelFileError, match="^not a valid ONNX model"):
        load_model(path)
