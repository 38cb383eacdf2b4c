"""ONNX uploads: onnxruntime's int8 quantization (dynamic and static) and its float16 conversion.

Each route writes a new .onnx file into a private temporary folder and returns it as an `OnnxModel`;
`optimizers.formats.save_all.save_all_formats` copies that file as the job's model.onnx, so the quantized file
itself is the download. The folder lives as long as the returned model does.

dynamic: int8 weights, activations quantized per call (MatMul / Gemm; convolutions stay float, see OnnxDynamic).
static: QDQ format (QuantizeLinear / DequantizeLinear pairs around int8 weights, which onnxruntime fuses
into integer kernels when it loads the file), activation ranges calibrated on the dataset.
"""
import logging
import os
import tempfile
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.transformers.float16 import convert_float_to_float16

from optimizers.errors import RecipeError, first_line
from optimizers.formats.onnx_model import OnnxModel
from optimizers.recipes.quantize.inputs import rebatch
from optimizers.recipes.quantize.quantizer import Quantizer

_LINEAR_OPS = ("MatMul", "Gemm")
_CONV_OPS = ("Conv",)
_QUIET = logging.ERROR  # onnxruntime.quantization logs advice (run pre-processing) through the root logger


class OnnxQuantizer(Quantizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.proto = onnx.load(self.model.onnx_path, load_external_data=False)

    def _op_types(self) -> tuple[str, ...]:
        return _LINEAR_OPS if self.config.layers == "linear" else (*_LINEAR_OPS, *_CONV_OPS)

    def layers(self) -> list[str]:
        weights = {tensor.name for tensor in self.proto.graph.initializer}
        # Only nodes that have a name can be kept float (nodes_to_exclude names them), and only those
        # multiplying by a stored weight are quantized by onnxruntime.
        return [node.name for node in self.proto.graph.node
                if node.name and node.op_type in self._op_types() and any(i in weights for i in node.input)]

    def layer_weights(self, layer: str) -> int:
        weights = {tensor.name: int(np.prod(tensor.dims)) for tensor in self.proto.graph.initializer}
        node = next(node for node in self.proto.graph.node if node.name == layer)
        return sum(weights.get(name, 0) for name in node.input)

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> OnnxModel:
        folder = tempfile.TemporaryDirectory(prefix="slimforge-onnx-")
        path = os.path.join(folder.name, "quantized.onnx")
        root = logging.getLogger()
        level = root.level
        root.setLevel(_QUIET)
        try:
            # The dynamic quantizer first splits each Gemm into MatMul + Add, naming the MatMul "<gemm>_MatMul".
            self._write(path, sorted({*keep_float, *(f"{name}_MatMul" for name in keep_float)}))
        except RecipeError:
            raise
        except Exception as error:  # noqa: BLE001 - onnxruntime's quantizer raises untyped errors
            raise RecipeError(f"onnxruntime could not quantize this model: {first_line(error)}") from error
        finally:
            root.setLevel(level)
        model = OnnxModel(path)
        model._folder = folder  # removed when the model is garbage-collected, not before
        return model

    def _write(self, path: str, exclude: list[str]) -> None:
        raise NotImplementedError


class OnnxDynamic(OnnxQuantizer):
    def _op_types(self) -> tuple[str, ...]:
        # Measured: onnxruntime's ConvInteger ran slower than its float Conv on x86 (a small CNN, batch 32),
        # so dynamic quantization leaves convolutions alone; onnx_static_int8 quantizes them.
        return _LINEAR_OPS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = f"onnxruntime.quantization quantize_dynamic (int8 weights, {self.granularity})"
        self.notes = ["weights are int8; activations are quantized on the fly at each call"]

    def _write(self, path: str, exclude: list[str]) -> None:
        quantize_dynamic(self.model.onnx_path, path, weight_type=QuantType.QInt8, per_channel=self.config.per_channel,
                         op_types_to_quantize=list(self._op_types()), nodes_to_exclude=exclude)


class OnnxStatic(OnnxQuantizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if len(self.model.input_names) != 1:
            raise RecipeError(f"onnx_static_int8 calibrates models with one input; this one takes "
                              f"{len(self.model.input_names)} ({', '.join(self.model.input_names)})")
        declared_batch = self.model.input_specs()[0]["shape"][0]
        if isinstance(declared_batch, int):  # a graph with a fixed batch takes calibration batches of that size
            self.calibration = rebatch(self.calibration, declared_batch)
        seen = sum(len(batch) for batch in self.calibration)
        self.backend = f"onnxruntime.quantization quantize_static (QDQ, int8, {self.granularity})"
        self.notes = [f"weights and activations are int8; activation ranges were calibrated on {seen} "
                      "training sample(s)"]

    def _write(self, path: str, exclude: list[str]) -> None:
        quantize_static(self.model.onnx_path, path, _Batches(self.model.input_names[0], self.calibration),
                        quant_format=QuantFormat.QDQ, per_channel=self.config.per_channel,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        op_types_to_quantize=list(self._op_types()), nodes_to_exclude=exclude)


class OnnxFloat16(OnnxQuantizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.notes = ["weights and compute are float16; inputs and outputs stay float32"]

    def layers(self) -> list[str]:
        return []

    def _write(self, path: str, exclude: list[str]) -> None:
        converted = convert_float_to_float16(self.proto, keep_io_types=True)
        # The converter appends its boundary Casts after the nodes that read them; onnxruntime runs that, but
        # onnx.checker (and so Slimforge's own loader) insists on topological order.
        sort_topologically(converted.graph)
        onnx.save(converted, path)


def sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder `graph.node` in place so every node comes after the nodes producing its inputs."""
    available = {value.name for value in graph.input} | {tensor.name for tensor in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [node for node in pending if all(name in available for name in node.input)]
        if not ready:
            raise RecipeError("the float16 conversion produced a graph with a cycle")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [node for node in pending if all(node is not done for done in ready)]
    copies = [onnx.NodeProto.FromString(node.SerializeToString()) for node in ordered]
    del graph.node[:]
    graph.node.extend(copies)


class _Batches(CalibrationDataReader):
    """The calibration batches as onnxruntime reads them, one feed dict per call."""

    def __init__(self, input_name: str, batches: list[Any]) -> None:
        self._feeds = iter([{input_name: batch.numpy()} for batch in batches])

    def get_next(self) -> dict | None:
        return next(self._feeds, None)
