"""MACs and non-zero weights of an ONNX graph, read from the graph rather than by running it.

onnxruntime runs outside torch, so FlopCounterMode sees nothing. Instead the graph's input is
pinned to the example's shape, ONNX shape inference fills in every intermediate shape, and the
matmul-like nodes are counted: MACs = output elements x the reduced dimension. Element-wise
ops are ignored, as FlopCounterMode ignores them, so the figures of the two paths agree.
"""

import math

import numpy
import onnx
from onnx import numpy_helper, shape_inference

from optimizers.errors import first_line

# op type -> (index of the data input, index of the weight input)
_MATMULS = {"MatMul": (0, 1), "Gemm": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}
_CONVS = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}  # op type -> index of the weight input


def onnx_macs(path: str, input_shape: tuple[int, ...]) -> tuple[int | None, str | None]:
    """(MACs of one run on an input of `input_shape`, note) or (None, reason)."""
    try:
        model = onnx.load(str(path), load_external_data=False)
        shapes = _inferred_shapes(model, input_shape)
    except Exception as error:  # noqa: BLE001 - counting is best effort, the report goes on
        return None, f"MACs could not be counted from the ONNX graph: {first_line(error)}"
    total, unknown = 0, set()
    for node in model.graph.node:
        macs = _node_macs(node, shapes)
        if macs is None:
            unknown.add(node.op_type)
        else:
            total += macs
    notes = []
    if unknown:
        notes.append(f"not counted: {', '.join(sorted(unknown))} nodes whose shapes ONNX shape inference "
                     "could not resolve")
    if any(attribute.type == onnx.AttributeProto.GRAPH for node in model.graph.node for attribute in node.attribute):
        notes.append("nodes inside control flow (If, Loop) are not counted")
    return total, "; ".join(notes) or None


def onnx_nonzero_parameters(path: str) -> int:
    """Non-zero values across the graph's initializers (its weights)."""
    model = onnx.load(str(path), load_external_data=False)
    return sum(int(numpy.count_nonzero(numpy_helper.to_array(tensor))) for tensor in model.graph.initializer)


def _inferred_shapes(model: onnx.ModelProto, input_shape: tuple[int, ...]) -> dict[str, list[int | None] | None]:
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    if len(inputs) == 1 and len(inputs[0].type.tensor_type.shape.dim) == len(input_shape):
        for dim, size in zip(inputs[0].type.tensor_type.shape.dim, input_shape, strict=True):
            dim.dim_value = size  # replaces a symbolic batch ("N") with the example's size
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    graph = inferred.graph
    values = [*graph.input, *graph.value_info, *graph.output]
    shapes: dict[str, list[int | None] | None] = {value.name: _dims(value) for value in values}
    shapes.update({tensor.name: list(tensor.dims) for tensor in graph.initializer})
    return shapes


def _dims(value: onnx.ValueInfoProto) -> list[int | None] | None:
    if not value.type.tensor_type.HasField("shape"):
        return None  # rank unknown; [] would claim a scalar
    return [dim.dim_value if dim.HasField("dim_value") else None for dim in value.type.tensor_type.shape.dim]


def _node_macs(node: onnx.NodeProto, shapes: dict[str, list[int | None] | None]) -> int | None:
    """MACs of one node: 0 for ops that are not matmul-like, None when a needed shape is unknown."""
    if node.op_type not in _MATMULS and node.op_type not in _CONVS:
        return 0
    output = _known(shapes.get(node.output[0]))
    if output is None:
        return None
    if node.op_type in _CONVS:
        weight = _known(shapes.get(node.input[_CONVS[node.op_type]]))
        # weight: [out channels, in channels / groups, *kernel]; each output element reduces over the rest
        return None if weight is None else math.prod(output) * math.prod(weight[1:])
    data_index, _ = _MATMULS[node.op_type]
    data = _known(shapes.get(node.input[data_index]))
    if data is None:
        return None
    transposed = node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute)
    reduced = data[0] if transposed or len(data) == 1 else data[-1]
    return math.prod(output) * reduced


def _known(dims: list[int | None] | None) -> list[int] | None:
    if dims is None or any(size is None for size in dims):
        return None
    return dims
