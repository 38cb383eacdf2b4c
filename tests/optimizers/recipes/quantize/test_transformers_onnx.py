"""dynamic_int8 on Hugging Face folders: ONNX export, onnxruntime's transformer fusions, int8 weights and embeddings.

The folders are small random models of transformers' real classes (tests/hf_folders.py); the job runs end to end
through `run_recipe`, and the result is judged on token ids the folder's own tokenizer makes from text.
"""
from collections import Counter
from pathlib import Path

import onnx
import pytest
import torch
import torch.nn.functional as F

from optimizers.configs import QuantizeConfig
from optimizers.configs.quantize_routes import lookup
from optimizers.formats.model_io import load_model
from optimizers.job_runner import run_recipe
from optimizers.job_spec import JobSpec
from optimizers.reporters import NullReporter
from tests.hf_folders import bert_folder, decoder_folder, zip_folder

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
tokenizers = pytest.importorskip("tokenizers")

from optimizers.recipes.quantize.transformers_onnx import (  # noqa: E402
    TransformersOnnxDynamic,
    export_token_ids,
    fuse,
    quantize_int8,
)

TEXTS = ["the small model", "a model", "the cat sat on the mat", "small things make the model small", "hello",
         "quantized weights keep the model small"]


@pytest.fixture(scope="module")
def bert_zip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bert")
    bert_folder(folder)
    return zip_folder(folder, tmp_path_factory.mktemp("upload") / "bert.zip")


def _run(model_zip: Path, out_dir: Path, **config) -> dict:
    spec = JobSpec.from_dict({"action": "run", "model_path": str(model_zip), "input_shape": [2, 12],
                              "input_dtype": "int64", "recipe": "quantize", "out_dir": str(out_dir),
                              "config": {"variant": "dynamic_int8", **config}})
    return run_recipe(spec, NullReporter())


def _sentences(model) -> torch.Tensor:
    """TEXTS tokenized by the folder's own tokenizer, padded to the longest."""
    tokenizer = tokenizers.Tokenizer.from_file(str(Path(model.directory) / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=model.pad_token_id or 0)
    return torch.tensor([encoding.ids for encoding in tokenizer.encode_batch(TEXTS)])


def _mean_pooled_cosine(reference: torch.Tensor, output: torch.Tensor, ids: torch.Tensor, pad: int) -> float:
    mask = (ids != pad).unsqueeze(-1).float()
    pooled = [(hidden * mask).sum(1) / mask.sum(1) for hidden in (reference, output)]
    return float(F.cosine_similarity(*pooled, dim=1).mean())


def test_onnxruntime_fuses_the_exported_bert_and_quantizes_attention_and_embeddings(bert_zip, tmp_path):
    model, _ = load_model(bert_zip)
    export_token_ids(model, str(tmp_path / "plain.onnx"))
    fusions = fuse(str(tmp_path / "plain.onnx"), str(tmp_path / "fused.onnx"), "bert", model.folder.config)
    assert fusions["Attention"] == 2 and fusions["EmbedLayerNormalization"] == 1 and fusions["Gelu"] == 2
    # Residual sums stay apart from their layer norms, as Sum, which onnxruntime's SkipLayerNormalization fusion
    # (a slower CPU kernel) does not take.
    fused_ops = Counter(node.op_type for node in onnx.load(tmp_path / "fused.onnx").graph.node)
    assert "SkipLayerNormalization" not in fused_ops and fused_ops["Sum"] == fused_ops["LayerNormalization"] == 4
    int8 = quantize_int8(str(tmp_path / "fused.onnx"))  # checked by Slimforge's ONNX loader
    ops = {node.op_type for node in onnx.load(int8.onnx_path).graph.node}
    assert {"QAttention", "QEmbedLayerNormalization"} <= ops and "Attention" not in ops
    ids = _sentences(model)
    with torch.no_grad():
        reference = model(ids)
    assert _mean_pooled_cosine(reference, int8(ids), ids, model.pad_token_id) > 0.99


def test_a_bert_folder_becomes_a_smaller_int8_onnx_model_that_embeds_sentences_alike(bert_zip, tmp_path):
    result = _run(bert_zip, tmp_path)
    assert result["primary_format"] == "onnx" and result["artifacts"][0] == "model.onnx"
    # The original is weighed as ONNX too (like for like), and int8 weights and embedding tables take a quarter.
    assert result["before"]["size_format"] == "onnx"
    assert result["after"]["size_bytes"] < 0.6 * result["before"]["size_bytes"]
    choice = next(note for note in result["notes"] if "int8 graph was kept" in note)
    assert "fused:" in choice and "plain:" in choice  # both candidates were timed, with their figures
    chosen = "fused" if "fused by onnxruntime's transformer optimizer" in result["backend"] else "plain"
    assert f"the {chosen} int8 graph was kept (the fastest" in choice

    saved, fmt = load_model(tmp_path / "model.onnx")  # Slimforge's own loader accepts the contrib operators
    assert fmt == "onnx"
    original, _ = load_model(bert_zip)
    ids = _sentences(original)
    with torch.no_grad():
        reference = original(ids)
    assert _mean_pooled_cosine(reference, saved(ids), ids, original.pad_token_id) > 0.99


def test_the_budget_keeps_the_most_sensitive_layers_float(bert_zip, tmp_path):
    result = _run(bert_zip, tmp_path, budget_metric="cosine", budget_min=0.999999)
    extras = result["extras"]
    assert extras["route"] == "transformers_onnx_dynamic"
    kept = extras["kept_float"]
    assert kept and set(kept) <= set(extras["sensitivity"])
    graph = onnx.load(tmp_path / "model.onnx").graph
    names = {node.name: node.op_type for node in graph.node}
    # A layer kept float is the same float node in the saved graph, not its int8 form.
    assert all(names.get(layer) in ("MatMul", "Attention", "Gather", "EmbedLayerNormalization") for layer in kept)


def test_keep_float_leaves_the_named_nodes_float_and_the_file_larger(bert_zip):
    model, _ = load_model(bert_zip)
    config = QuantizeConfig(variant="dynamic_int8")
    quantizer = TransformersOnnxDynamic(model, config, lookup("dynamic_int8", "transformers"), NullReporter(),
                                        example=torch.zeros(1, 10, dtype=torch.int64))
    layers = quantizer.layers()  # of the graph the timing chose, fused or not
    float_ops = {node.name: node.op_type for node in onnx.load(quantizer.float_graph).graph.node}
    biggest = max(layers, key=quantizer.layer_weights)  # the token embedding table, in either graph
    assert float_ops[biggest] in ("Gather", "EmbedLayerNormalization")
    every = quantizer.quantize()
    kept = quantizer.quantize(frozenset({biggest}))
    ops = {node.name: node.op_type for node in onnx.load(kept.onnx_path).graph.node}
    assert ops[biggest] == float_ops[biggest]
    assert Path(kept.onnx_path).stat().st_size > Path(every.onnx_path).stat().st_size
    assert model.model.config._attn_implementation == "sdpa"  # the export's eager attention was switched back


@pytest.mark.parametrize("family, fusions", [("gpt2", True), ("llama", False)])
def test_decoders_are_quantized_too(family, fusions, tmp_path):
    folder = tmp_path / family
    decoder_folder(folder, family, tokenizer_files="tokenizer.json")
    upload = zip_folder(folder, tmp_path / f"{family}.zip", root="")
    result = _run(upload, tmp_path / "out")
    assert result["primary_format"] == "onnx"
    assert result["after"]["size_bytes"] < result["before"]["size_bytes"]
    choice = next(note for note in result["notes"] if "int8 graph was kept" in note)
    assert ("fused:" in choice) == fusions  # GPT-2's fused graph is timed against the plain one
    if not fusions:
        assert any("no transformer fusions for llama" in note for note in result["notes"])
    original, _ = load_model(upload)
    saved, _ = load_model(tmp_path / "out" / "model.onnx")
    ids = torch.randint(0, original.folder.config["vocab_size"], (3, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = original(ids)
    assert F.cosine_similarity(saved(ids).flatten(1), reference.flatten(1), dim=1).mean() > 0.99
