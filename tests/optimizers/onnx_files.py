"""ONNX files built node by node with onnx.helper: exact, tiny, and no exporter needed."""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _weights() -> tuple[onnx.TensorProto, onnx.TensorProto]:
    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "w")
    bias = numpy_helper.from_array(np.ones(3, dtype=np.float32), "b")
    return weight, bias


def linear_graph(weight: onnx.TensorProto | None = None) -> onnx.GraphProto:
    """y = x @ w + b with x [batch, 4]: w = arange(12) as 4x3, b = ones(3); 15 parameters."""
    default_weight, bias = _weights()
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])]
    return helper.make_graph(
        nodes, "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], [weight or default_weight, bias],
    )


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def model_of(graph: onnx.GraphProto) -> onnx.ModelProto:
    return helper.make_model(graph, opset_imports=OPSET, ir_version=8)


def linear_onnx(path: Path) -> Path:
    return save(model_of(linear_graph()), path)


def external(tensor: onnx.TensorProto, location: str = "../../etc/passwd") -> onnx.TensorProto:
    """Turn `tensor` into one whose bytes live in another file, as onnx.save(..., save_as_external_data) does."""
    tensor.ClearField("float_data")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    return tensor


def two_output_onnx(path: Path) -> Path:
    """int64 ids [batch, n] in; (ids * 2 as float, ids summed over n as int64) out."""
    nodes = [
        helper.make_node("Cast", ["ids"], ["ids_float"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["ids_float", "ids_float"], ["doubled"]),
        helper.make_node("ReduceSum", ["ids", "axes"], ["total"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "two_outputs", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "n"])],
        [helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["batch", "n"]),
         helper.make_tensor_value_info("total", TensorProto.INT64, ["batch"])],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")],
    )
    return save(model_of(graph), path)


def if_with_external_branch(path: Path) -> Path:
    """An If node whose then-branch holds a Constant with external data: hidden one graph down."""
    constant = external(numpy_helper.from_array(np.ones(3, dtype=np.float32), "c"))
    branch = helper.make_graph([helper.make_node("Constant", [], ["out"], value=constant)], "then", [],
                               [helper.make_tensor_value_info("out", TensorProto.FLOAT, [3])])
    zeros = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "z")
    other = helper.make_graph([helper.make_node("Constant", [], ["out2"], value=zeros)], "else", [],
                              [helper.make_tensor_value_info("out2", TensorProto.FLOAT, [3])])
    node = helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=other)
    graph = helper.make_graph([node], "iffy", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    return save(model_of(graph), path)
