"""An ONNX model that the rest of Slimforge can call like a module: tensors in, tensors out.

onnxruntime runs it on the CPU with as many intra-op threads as torch uses, so its latency is
comparable with the PyTorch formats measured in the same process. Recipes do not apply to it
(see `optimizers.registry.applicability`); it can be inspected and measured.
"""

import math
import os
import tempfile
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch

from optimizers.errors import ModelFileError, ModelInputError, first_line


class OnnxModel:
    def __init__(self, path: str | os.PathLike, proto: onnx.ModelProto | None = None):
        """`path` must already have passed `optimizers.formats.onnx_checks.check_onnx_file` (no external data)."""
        self.onnx_path = os.fspath(path)
        proto = proto if proto is not None else onnx.load(self.onnx_path, load_external_data=False)
        self._parameter_count = _initializer_elements(proto)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: warnings would flood the job log
        try:
            self._session = onnxruntime.InferenceSession(
                self.onnx_path, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own untyped failures
            raise ModelFileError(f"cannot load the onnx model: {first_line(error)}") from error
        self.input_names = [value.name for value in self._session.get_inputs()]
        self.output_names = [value.name for value in self._session.get_outputs()]

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(tensors) != len(self.input_names):
            raise ModelInputError(f"the ONNX model takes {len(self.input_names)} input(s) "
                                  f"({', '.join(self.input_names)}); got {len(tensors)}")
        feed = {name: _to_numpy(tensor) for name, tensor in zip(self.input_names, tensors, strict=True)}
        outputs = [torch.from_numpy(np.asarray(value)) for value in self._session.run(None, feed)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def __reduce__(self):
        """Pickled as its file's bytes (a spawned replica, or another host, has no such path): see formats.portable."""
        with open(self.onnx_path, "rb") as file:
            return _onnx_from_bytes, (file.read(),)

    def eval(self) -> "OnnxModel":
        return self  # an ONNX graph has no training mode

    def parameter_count(self) -> int:
        """Elements in the model's initializers: its weights and constant tensors."""
        return self._parameter_count

    def input_specs(self) -> list[dict[str, Any]]:
        """[{"name", "shape", "type"}]: shape entries are ints, or names / None for dynamic dimensions."""
        return [{"name": value.name, "shape": list(value.shape), "type": value.type}
                for value in self._session.get_inputs()]

    def __repr__(self) -> str:
        return f"OnnxModel({self.onnx_path!r}, inputs={self.input_names})"


def _onnx_from_bytes(data: bytes) -> OnnxModel:
    """An ONNX model that arrived by pickle, written to a file of this process's own (its temporary folder)."""
    handle, path = tempfile.mkstemp(suffix=".onnx", prefix="slimforge-arrived-")
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    return OnnxModel(path)


def _to_numpy(tensor: Any) -> np.ndarray:
    if not isinstance(tensor, torch.Tensor):
        raise ModelInputError(f"the ONNX model takes tensors; got {type(tensor).__name__}")
    if tensor.dtype == torch.bfloat16:
        raise ModelInputError("the ONNX model cannot take bfloat16 inputs here (NumPy has no bfloat16)")
    return tensor.detach().cpu().contiguous().numpy()


def _initializer_elements(proto: onnx.ModelProto) -> int:
    graph = proto.graph
    dense = sum(math.prod(tensor.dims) for tensor in graph.initializer)
    sparse = sum(math.prod(tensor.dims) for tensor in graph.sparse_initializer)
    return dense + sparse
