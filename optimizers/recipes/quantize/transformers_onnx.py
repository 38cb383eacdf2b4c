"""dynamic_int8 for Hugging Face folders: an ONNX export, onnxruntime's transformer fusions, int8 weights.

The model (a `TokenIdsModel`: token ids in, one tensor out) is exported once with the TorchScript-based exporter,
with dynamic batch and sequence axes and transformers' eager attention: onnxruntime's fusion patterns recognise
that graph (on BERT: Attention, EmbedLayerNormalization, Gelu), while the sdpa graph and the dynamo exporter's graph
leave attention unfused. Where onnxruntime has fusions for the family, the fused graph is made too and checked
against the plain one; in both, residual sums are written so that onnxruntime keeps its fast LayerNormalization
kernel (`residual_sums`). Each graph is then quantized by onnxruntime's `quantize_dynamic` (int8 weights for
MatMul, the fused Attention and the embedding tables, Gather and EmbedLayerNormalization: the tables are what
shrink the file, a small BERT's token table being about 40% of it), and the candidates are timed on a batch of 32
rows of the job's input length, in turn, in this process: the fastest is kept, and the notes say which ran and why.
The chosen graph's quantized nodes are the layers the accuracy budget can keep float.

bench/transformers_int8.py measures the result on all-MiniLM-L6-v2 against onnxruntime's own recipe (a plain export
quantized with quantize_dynamic's default operators) on real sentences; bench/RESULTS.md has the figures.
"""
import contextlib
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from optimizers.errors import ModelFileError, RecipeError, first_line
from optimizers.formats.hf_folder import TokenIdsModel
from optimizers.formats.onnx_checks import check_onnx_file
from optimizers.formats.onnx_model import OnnxModel
from optimizers.recipes.quantize.quantizer import Quantizer
from optimizers.recipes.quantize.sensitivity import score

# config.json's model_type -> onnxruntime's optimizer model type. The other families (llama, qwen2, mistral) have
# no fusions there that match transformers' graphs: their plain export is quantized as it is.
FUSION_TYPES = {"bert": "bert", "gpt2": "gpt2"}
QUANTIZED_OPS = ("MatMul", "Attention", "Gather", "EmbedLayerNormalization")
LINEAR_OPS = ("MatMul", "Attention")  # config.layers == "linear": the embedding tables stay float
# Fusions left out, as measured on all-MiniLM-L6-v2 (batch 32, 2 threads): onnxruntime's CPU BiasGelu kernel took
# 18 ms where Gelu took 11 ms with the bias folded into the DynamicQuantizeMatMul before it (onnxruntime folds it when
# it loads the file), and its SkipLayerNormalization kernel takes about 2.3 ms on [32, 75, 384] where Add and
# LayerNormalization take about 1 ms (see residual_sums).
_FUSION_OPTIONS = {"enable_bias_gelu": False, "enable_skip_layer_norm": False, "enable_bias_skip_layer_norm": False}
_OPSET = 17
_ONNX_LIMIT_BYTES = 2 * 1024 ** 3 - 64 * 1024 ** 2  # one protobuf file; Slimforge refuses external data
_TIMING_ROWS = 32
# Rows x tokens x parameters a timing call may cost (MiniLM-L6: 32 rows of 128 tokens at 22.6 M parameters is a tenth of
# it): a large decoder is timed on fewer rows, not for minutes.
_TIMING_WORK = 1e12
_TIMING_ROUNDS = (3, 10)  # at least, at most: rounds of one call per candidate, alternating
_TIMING_BUDGET_S = 20.0
_DEFAULT_LENGTH = 32  # tokens per row when the job gives no example input
_TRACE_SHAPE = (2, 7)  # traced with another shape than the job's, so a shape baked into the graph shows up
_QUIET = logging.ERROR  # onnxruntime's optimizer and quantizer log advice through the root logger


@dataclass
class Candidate:
    label: str  # "fused" or "plain"
    source: str  # the float ONNX file quantize() reads
    description: str  # what the graph is, for the notes
    quantized: OnnxModel | None = None  # every layer int8, made while choosing
    p50_ms: float | None = None
    cosine: float | None = None


class TransformersOnnxDynamic(Quantizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.model, TokenIdsModel):
            raise RecipeError("the transformers ONNX route takes a model built from a Hugging Face folder")
        _refuse_oversized(self.model)
        self._folder = tempfile.TemporaryDirectory(prefix="slimforge-hf-onnx-")
        self._batch = _timing_batch(self.model, self.example)
        self._chosen: Candidate | None = None
        self._proto: onnx.ModelProto | None = None
        layers = ("linear layers and attention" if self.config.layers == "linear" else
                  "linear layers, attention and the embedding tables")
        self._quantization = f"onnxruntime quantize_dynamic: int8 weights ({self.granularity}) for {layers}"
        self.backend = f"ONNX export; {self._quantization}"

    # -- the Quantizer shape ---------------------------------------------------------------------------------

    def layers(self) -> list[str]:
        proto = self._chosen_proto()
        # Only float tensors are weights onnxruntime quantizes (an int64 table of shapes is not one).
        weights = {tensor.name for tensor in proto.graph.initializer if tensor.data_type == onnx.TensorProto.FLOAT}
        return [node.name for node in proto.graph.node
                if node.name and node.op_type in self._op_types and _holds_weight(node, weights)]

    def layer_weights(self, layer: str) -> int:
        proto = self._chosen_proto()
        sizes = {tensor.name: int(np.prod(tensor.dims)) for tensor in proto.graph.initializer}
        node = next(node for node in proto.graph.node if node.name == layer)
        return sum(sizes.get(name, 0) for name in node.input)

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> OnnxModel:
        chosen = self._choose()
        if not keep_float and chosen.quantized is not None:
            return chosen.quantized
        return self._int8(chosen.source, keep_float)

    # -- export, fusion, choice ------------------------------------------------------------------------------

    @property
    def _op_types(self) -> tuple[str, ...]:
        return LINEAR_OPS if self.config.layers == "linear" else QUANTIZED_OPS

    def _int8(self, source: str, keep_float: frozenset[str]) -> OnnxModel:
        return quantize_int8(source, keep_float, per_channel=self.config.per_channel, op_types=self._op_types)

    @property
    def float_graph(self) -> str:
        """The float ONNX file of the chosen candidate: what quantize() quantizes, with the layers' names."""
        return self._choose().source

    def _chosen_proto(self) -> onnx.ModelProto:
        if self._proto is None:
            self._proto = onnx.load(self.float_graph, load_external_data=False)
        return self._proto

    def _choose(self) -> Candidate:
        if self._chosen is None:
            candidates = self._candidates()
            reference = _run_torch(self.model, self._batch)
            for candidate in candidates:
                self.stop_if_cancelled()
                candidate.quantized = self._int8(candidate.source, frozenset())
                candidate.cosine = score(reference, candidate.quantized(self._batch), "cosine").fidelity
            _time_alternately(candidates, self._batch)
            self._chosen = min(candidates, key=lambda candidate: candidate.p50_ms)
            self.backend = f"{self._chosen.description}; {self._quantization}"
            self.notes.append(self._choice_note(candidates))
            for candidate in candidates:
                if candidate is not self._chosen:
                    candidate.quantized = None  # its session holds memory the job no longer needs
        return self._chosen

    def _candidates(self) -> list[Candidate]:
        exported = os.path.join(self._folder.name, "exported.onnx")  # as exported: what the fusions match
        plain = os.path.join(self._folder.name, "plain.onnx")
        self.report.log("exporting the model to ONNX")
        export_token_ids(self.model, exported)
        proto = onnx.load(exported, load_external_data=False)
        residual_sums(proto)
        onnx.save(proto, plain)
        _check_export(self.model, plain, self._batch)
        candidates = [Candidate("plain", plain, "plain ONNX export")]
        family = self.model.folder.model_type
        if family not in FUSION_TYPES:
            self.notes.append(f"onnxruntime has no transformer fusions for {family}: its plain ONNX export is "
                              "quantized")
            return candidates
        fused = os.path.join(self._folder.name, "fused.onnx")
        self.report.log("fusing the ONNX graph (onnxruntime transformer optimizer)")
        try:
            fusions = fuse(exported, fused, family, self.model.folder.config)
            _check_against(plain, fused, self._batch)
        except (RecipeError, ModelFileError) as error:
            self.notes.append(f"onnxruntime's transformer fusions were not used: {first_line(error)}")
            return candidates
        if not fusions:
            self.notes.append("onnxruntime's transformer optimizer fused nothing in this graph")
            return candidates
        listed = ", ".join(f"{count} {op}" for op, count in fusions.items())
        return [Candidate("fused", fused, f"ONNX export fused by onnxruntime's transformer optimizer ({listed})"),
                *candidates]

    def _choice_note(self, candidates: list[Candidate]) -> str:
        rows, length = self._batch.shape
        timings = "; ".join(f"{candidate.label}: {candidate.p50_ms:.1f} ms, output cosine {candidate.cosine:.5f}"
                            for candidate in candidates)
        chosen = self._chosen
        why = "the only candidate" if len(candidates) == 1 else "the fastest"
        return (f"the {chosen.label} int8 graph was kept ({why}; p50 latency at batch {rows} x {length} random token "
                f"ids, {torch.get_num_threads()} thread(s), and the output cosine vs the float model on them: "
                f"{timings})")


# -- the pieces, each usable on its own ---------------------------------------------------------------------------

def export_token_ids(model: TokenIdsModel, path: str) -> None:
    """Write `model` as ONNX (opset 17, input "input_ids" [batch, sequence] int64), with eager attention.

    The TorchScript-based exporter (`dynamo=False`) is used: on transformers 5 it exports BERT, GPT-2 and Llama-like
    decoders with free batch and sequence axes, and its graph is the one onnxruntime's fusions recognise. The
    model's attention implementation is switched to eager for the export and switched back after.
    """
    inner = model.model
    previous = inner.config._attn_implementation
    sample = _trace_sample(model)
    try:
        inner.set_attn_implementation("eager")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(model, (sample,), path, dynamo=False, external_data=False, opset_version=_OPSET,
                              input_names=["input_ids"], output_names=["output"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}})
    except Exception as error:  # noqa: BLE001 - any exporter failure means no ONNX graph for this model
        raise RecipeError(f"the {model.folder.architecture} could not be exported to ONNX: {first_line(error)}") \
            from error
    finally:
        inner.set_attn_implementation(previous)


def quantize_int8(source: str, keep_float: frozenset[str] = frozenset(), *, per_channel: bool = True,
                  op_types: tuple[str, ...] = QUANTIZED_OPS) -> OnnxModel:
    """`source` with int8 weights for every node of `op_types` but those named in `keep_float`, in a private
    temporary folder that lives as long as the returned model; checked by Slimforge's own ONNX loader."""
    folder = tempfile.TemporaryDirectory(prefix="slimforge-onnx-")
    path = os.path.join(folder.name, "quantized.onnx")
    try:
        with _quiet():
            quantize_dynamic(source, path, weight_type=QuantType.QInt8, per_channel=per_channel,
                             op_types_to_quantize=list(op_types), nodes_to_exclude=sorted(keep_float),
                             # Shape inference stops at com.microsoft operators (Attention, ...): their outputs are
                             # float32, as every activation of these graphs.
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True})
    except Exception as error:  # noqa: BLE001 - onnxruntime's quantizer raises untyped errors
        raise RecipeError(f"onnxruntime could not quantize this model: {first_line(error)}") from error
    model = OnnxModel(path, check_onnx_file(path))  # what Slimforge's own loader accepts, or the job fails here
    model._folder = folder  # removed when the model is garbage-collected, not before
    return model


def fuse(source: str, target: str, family: str, config: dict[str, Any]) -> dict[str, int]:
    """Run onnxruntime's transformer optimizer (its Python fusions only: the file stays hardware-neutral) on
    `source` (as exported: the fusions match its residual Adds), write `target` with `residual_sums`, and return the
    fused operators it made ({"Attention": 6, ...})."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = FUSION_TYPES[family]
    options = FusionOptions(model_type)
    for name, value in _FUSION_OPTIONS.items():
        setattr(options, name, value)
    heads = config.get("num_attention_heads", config.get("n_head")) or 0
    hidden = config.get("hidden_size", config.get("n_embd")) or 0
    try:
        with _quiet():
            optimized = optimize_model(source, model_type=model_type, num_heads=heads, hidden_size=hidden,
                                       opt_level=0, optimization_options=options)
    except Exception as error:  # noqa: BLE001 - the optimizer raises untyped errors
        raise RecipeError(f"onnxruntime's transformer optimizer failed: {first_line(error)}") from error
    before = Counter(node.op_type for node in onnx.load(source, load_external_data=False).graph.node)
    after = Counter(node.op_type for node in optimized.model.graph.node)
    residual_sums(optimized.model)  # after the fusions, which match the residual Adds
    with _quiet():
        optimized.save_model_to_file(target)  # sorts the nodes topologically, as onnx.checker insists
    return {op: count for op, count in after.items() if count > before.get(op, 0)}


def residual_sums(proto: onnx.ModelProto) -> int:
    """Write each residual Add that only feeds a LayerNormalization as Sum (the same sum); return how many.

    onnxruntime fuses Add + LayerNormalization into SkipLayerNormalization when it loads a file, and its CPU kernel
    for that ran 2-5 times slower than the two it replaces (2.3 ms against about 1 ms on [32, 75, 384], 2 threads):
    on all-MiniLM-L6-v2 the 12 of them took a fifth of an int8 batch. Its fusion matches Add only.
    """
    graph = proto.graph
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {value.name for value in graph.output}
    rewritten = 0
    for node in graph.node:
        if node.op_type != "Add" or node.domain not in ("", "ai.onnx") or node.output[0] in outputs:
            continue
        users = readers.get(node.output[0], [])
        if len(users) == 1 and users[0].op_type == "LayerNormalization" and users[0].input[0] == node.output[0]:
            node.op_type = "Sum"
            rewritten += 1
    return rewritten


def _holds_weight(node: onnx.NodeProto, weights: set[str]) -> bool:
    """Whether onnxruntime's dynamic quantizer would store this node's weights as int8."""
    if node.op_type == "Gather":  # an embedding table: the data input is the weight (indices are computed)
        return node.input[0] in weights
    return any(name in weights for name in node.input)


def _refuse_oversized(model: TokenIdsModel) -> None:
    size = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    if size > _ONNX_LIMIT_BYTES:
        raise RecipeError(f"this model's float32 weights take {size / 1024 ** 3:.1f} GB: an ONNX file holds at most "
                          "2 GB (larger ones need external data files, which Slimforge refuses); use "
                          "weight_only_int8 or weight_only_int4 for it")


def _vocabulary(model: TokenIdsModel) -> int:
    return int(model.folder.config.get("vocab_size") or model.model.get_input_embeddings().num_embeddings)


def _max_length(model: TokenIdsModel) -> int:
    config = model.folder.config
    return int(config.get("max_position_embeddings") or config.get("n_positions") or 512)


def _token_ids(model: TokenIdsModel, rows: int, length: int, seed: int) -> torch.Tensor:
    """Seeded random ids of the model's vocabulary, never its padding id; for an encoder that masks padding, the
    second row ends in padding (so the export traces, and the checks run, the masked path)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, _vocabulary(model), (rows, length), generator=generator)
    pad = model.pad_token_id
    if pad is not None:
        ids[ids == pad] = (pad + 1) % _vocabulary(model)
        if rows > 1 and length > 1:
            ids[1, -max(1, length // 4):] = pad
    return ids


def _trace_sample(model: TokenIdsModel) -> torch.Tensor:
    rows, length = _TRACE_SHAPE
    return _token_ids(model, rows, min(length, _max_length(model)), seed=1)


def _timing_batch(model: TokenIdsModel, example: torch.Tensor | None) -> torch.Tensor:
    """_TIMING_ROWS rows (fewer for large models) of the job's input length: what the candidates are timed and
    checked on."""
    if example is not None and (example.dim() != 2 or example.is_floating_point()):
        raise RecipeError(f"a Hugging Face model takes token ids [batch, sequence] as int64; the job's input is "
                          f"{list(example.shape)} {str(example.dtype).removeprefix('torch.')}")
    length = int(example.shape[1]) if example is not None else min(_DEFAULT_LENGTH, _max_length(model))
    parameters = sum(parameter.numel() for parameter in model.parameters())
    rows = max(1, min(_TIMING_ROWS, int(_TIMING_WORK // (parameters * length))))
    return _token_ids(model, rows, length, seed=0)


def _run_torch(model: TokenIdsModel, batch: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(batch).float()


def _check_export(model: TokenIdsModel, path: str, batch: torch.Tensor) -> None:
    """The export must answer like the model on the job's shape (not the traced one), padding included."""
    try:
        exported = OnnxModel(path, check_onnx_file(path))
    except ModelFileError as error:
        raise RecipeError(f"the ONNX export of this model is unusable: {error}") from error
    _insist_close(_run_torch(model, batch), exported(batch), "the ONNX export")


def _check_against(plain: str, fused: str, batch: torch.Tensor) -> None:
    _insist_close(OnnxModel(plain)(batch), OnnxModel(fused, check_onnx_file(fused))(batch), "the fused graph")


def _insist_close(expected: torch.Tensor, got: torch.Tensor, what: str) -> None:
    if got.shape != expected.shape:
        raise RecipeError(f"{what} returns shape {list(got.shape)} where the model returns {list(expected.shape)}")
    difference = float((got.double() - expected.double()).abs().max())
    scale = float(expected.abs().max())
    if not difference <= 1e-3 * max(1.0, scale):  # float rounding of fused kernels; NaN fails too
        raise RecipeError(f"{what} differs from the model (max abs diff {difference:.3g} at outputs up to "
                          f"{scale:.3g})")


def _time_alternately(candidates: list[Candidate], batch: torch.Tensor) -> None:
    """p50 latency of each candidate, one call each in turn, so load from elsewhere falls on all of them alike."""
    for candidate in candidates:
        candidate.quantized(batch)  # warm-up: onnxruntime plans its buffers on the first call
    if len(candidates) == 1:
        candidates[0].p50_ms = _one_call_ms(candidates[0].quantized, batch)
        return
    timings: dict[str, list[float]] = {candidate.label: [] for candidate in candidates}
    least, most = _TIMING_ROUNDS
    deadline = time.perf_counter() + _TIMING_BUDGET_S
    for round_index in range(most):
        if round_index >= least and time.perf_counter() > deadline:
            break
        for candidate in candidates:
            timings[candidate.label].append(_one_call_ms(candidate.quantized, batch))
    for candidate in candidates:
        candidate.p50_ms = statistics.median(timings[candidate.label])


def _one_call_ms(model: OnnxModel, batch: torch.Tensor) -> float:
    started = time.perf_counter()
    model(batch)
    return (time.perf_counter() - started) * 1000.0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(_QUIET)
    try:
        yield
    finally:
        root.setLevel(level)
