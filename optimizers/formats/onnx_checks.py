"""Check an uploaded ONNX file before onnxruntime ever opens it.

Parsing the protobuf runs no code. What can hurt is a tensor whose bytes live in an "external data"
file: onnxruntime would open whatever path the upload names, next to it or anywhere, so such models
are refused outright rather than resolved.
"""

import os
from collections.abc import Iterator

import onnx
from google.protobuf.message import DecodeError

from optimizers.errors import ModelFileError, first_line

EXTERNAL_DATA_REFUSED = ("ONNX models that reference external data files are refused; "
                         "save with all tensors inside the .onnx file")
_INVALID = "not a valid ONNX model"


def check_onnx_file(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse and validate `path`; return the ModelProto or raise ModelFileError naming the problem."""
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{_INVALID}: the file is truncated or corrupt ({first_line(error)})") from error
    except OSError as error:
        raise ModelFileError(f"cannot read the model file: {error.strerror or error}") from error
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFileError(f"{_INVALID}: it has no graph nodes (a truncated file, or not ONNX at all)")
    if any(_is_external(tensor) for tensor in _all_tensors(model)):
        raise ModelFileError(EXTERNAL_DATA_REFUSED)
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{_INVALID}: onnx.checker refuses it: {first_line(error)}") from error
    return model


def _is_external(tensor: onnx.TensorProto) -> bool:
    # Either field alone is enough for some reader to go looking for a file; refuse both.
    return tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor in the model: initializers, sparse ones, node attributes, subgraphs and functions."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _attribute_tensors(node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _attribute_tensors(node)


def _attribute_tensors(node: onnx.NodeProto) -> Iterator[onnx.TensorProto]:
    for attribute in node.attribute:
        if attribute.HasField("t"):
            yield attribute.t
        yield from attribute.tensors
        for sparse in [attribute.sparse_tensor, *attribute.sparse_tensors]:
            yield from (sparse.values, sparse.indices)
        if attribute.HasField("g"):
            yield from _graph_tensors(attribute.g)
        for subgraph in attribute.graphs:
            yield from _graph_tensors(subgraph)
