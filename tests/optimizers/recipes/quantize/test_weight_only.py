"""weight_only_int8 / weight_only_int4 on Hugging Face decoders: int8 or int4 weights, int8 embeddings, float
activations, saved as TorchScript.

The folders are random models of transformers' real classes (a Llama whose head is tied to its token embedding, and
GPT-2, whose layers are Conv1D and whose head is tied too), wide enough that weights, not the archive's code, make up
the file. Each job runs end to end through `run_recipe`; the saved file is read back through the upload checks and
run at shapes other than the one it was traced with.
"""
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from optimizers.configs import QuantizeConfig
from optimizers.configs.quantize_routes import lookup
from optimizers.formats.model_io import load_model
from optimizers.job_runner import run_recipe
from optimizers.job_spec import JobSpec
from optimizers.recipes.quantize.weight_only_modules import (
    Int4Linear,
    Int8Linear,
    int4_groups,
    int8_rows,
    scripted,
)
from optimizers.reporters import NullReporter
from tests.hf_folders import byte_level_bpe, zip_folder

transformers = pytest.importorskip("transformers")

from optimizers.recipes.quantize.recipe import quantize  # noqa: E402
from optimizers.recipes.quantize.weight_only import WeightOnlyQuantizer  # noqa: E402

HIDDEN = 256
TARGET_FILE_RATIO = {"weight_only_int8": 0.30, "weight_only_int4": 0.20}
MIN_COSINE = {"weight_only_int8": 0.999, "weight_only_int4": 0.98}


def _decoder_zip(folder: Path, family: str, layers: int = 2) -> Path:
    """A decoder HIDDEN wide with a byte-level BPE tokenizer, zipped as an upload."""
    tokenizer = byte_level_bpe()
    vocab = tokenizer.get_vocab_size()
    if family == "llama":
        config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                                          num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                          max_position_embeddings=64, tie_word_embeddings=True)
        model = transformers.LlamaForCausalLM
    else:
        config = transformers.GPT2Config(vocab_size=vocab, n_embd=HIDDEN, n_layer=layers, n_head=4, n_positions=64)
        model = transformers.GPT2LMHeadModel
    torch.manual_seed(3)
    source = folder / f"{family}-{layers}"
    model(config).eval().save_pretrained(source)
    tokenizer.save(str(source / "tokenizer.json"))
    return zip_folder(source, folder / f"{family}-{layers}.zip")


@pytest.fixture(scope="module")
def decoders(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("decoders")
    return {family: _decoder_zip(folder, family) for family in ("llama", "gpt2")}


def _run(model_zip: Path, out_dir: Path, **config) -> dict:
    spec = JobSpec.from_dict({"action": "run", "model_path": str(model_zip), "input_shape": [1, 16],
                              "input_dtype": "int64", "recipe": "quantize", "out_dir": str(out_dir),
                              "config": config})
    return run_recipe(spec, NullReporter())


def _mean_cosine(reference: torch.Tensor, output: torch.Tensor) -> float:
    """Mean cosine of the logits, position by position."""
    width = reference.shape[-1]
    return float(F.cosine_similarity(output.reshape(-1, width), reference.reshape(-1, width), dim=1).mean())


@pytest.mark.parametrize("family, variant", [("llama", "weight_only_int8"), ("gpt2", "weight_only_int4")])
def test_the_job_shrinks_the_file_and_the_saved_model_answers_like_the_original_at_any_shape(
        decoders, tmp_path, family, variant):
    result = _run(decoders[family], tmp_path, variant=variant)
    assert result["artifacts"][0] == "model.pt" and result["primary_format"] == "torchscript"
    assert result["extras"]["route"] == variant
    assert result["backend"].startswith(lookup(variant, "transformers").backend)
    # Like for like: against the original written as TorchScript in the same run.
    assert result["ratios"]["size"] <= TARGET_FILE_RATIO[variant], result["ratios"]
    assert any("tied weights are one int8 matrix, stored once" in note for note in result["notes"])
    assert not any("answers correctly only for inputs of shape" in note for note in result["notes"])
    assert "aten's weight-only kernels have no ONNX form" in result["formats"]["skipped"]["onnx"]
    # Weights are counted whatever their precision (int4 two a byte; biases are float buffers now), and the
    # kernels' multiply-accumulates are counted like the float matmuls they replace.
    assert 0.95 <= result["ratios"]["params"] <= 1.0 and result["after"]["macs_note"] is None
    assert result["ratios"]["macs"] == pytest.approx(1.0, abs=0.05)
    _answers_like_the_original(tmp_path / "model.pt", decoders[family], variant)


@pytest.mark.parametrize("family, variant", [("llama", "weight_only_int4"), ("gpt2", "weight_only_int8")])
def test_the_recipe_on_the_other_family_and_variant(decoders, tmp_path, family, variant):
    original, _ = load_model(decoders[family])
    example = torch.zeros(1, 16, dtype=torch.int64)
    result = quantize(original, None, QuantizeConfig(variant=variant, group_size=32), NullReporter(),
                      example=example)
    torch.jit.save(result.model, str(tmp_path / "model.pt"))
    torch.jit.save(torch.jit.trace(original, example, check_trace=False), str(tmp_path / "fp32.pt"))
    ratio = (tmp_path / "model.pt").stat().st_size / (tmp_path / "fp32.pt").stat().st_size
    assert ratio <= TARGET_FILE_RATIO[variant]
    _answers_like_the_original(tmp_path / "model.pt", decoders[family], variant)


def _answers_like_the_original(saved_path: Path, upload: Path, variant: str) -> None:
    saved, _ = load_model(saved_path)  # the upload checks: only tensor-math operators
    original, _ = load_model(upload)
    for shape in [(1, 16), (3, 21), (2, 1)]:  # the trace's shape, then others
        ids = torch.randint(0, 300, shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            reference, output = original(ids), saved(ids)
        assert output.shape == reference.shape
        assert _mean_cosine(reference, output) >= MIN_COSINE[variant], (shape, _mean_cosine(reference, output))


def test_the_tied_embedding_and_head_are_one_int8_matrix_in_the_file(decoders, tmp_path):
    original, _ = load_model(decoders["llama"])
    quantizer = _quantizer(original, "weight_only_int4")
    assert "model.lm_head" not in quantizer.layers() and quantizer.layers()[0] == "model.model.embed_tokens"
    quantized = quantizer.quantize()
    embedding, head = quantized.get_submodule("model.model.embed_tokens"), quantized.get_submodule("model.lm_head")
    assert head.original_name == "Int8Linear" and embedding.weight is head.weight  # int8, not int4: shared
    path = tmp_path / "llama.pt"
    torch.jit.save(quantizer.finish(quantized), str(path))
    table_bytes = original.model.model.embed_tokens.weight.numel()  # int8: one byte a value
    with zipfile.ZipFile(path) as archive:
        tables = [info for info in archive.infolist() if "/data/" in info.filename and info.file_size == table_bytes]
    assert len(tables) == 1


def test_the_budget_keeps_layers_float(decoders, tmp_path):
    original, _ = load_model(decoders["llama"])
    quantizer = _quantizer(original, "weight_only_int4")
    name = "model.model.layers.0.mlp.down_proj"
    kept = quantizer.quantize(frozenset({name}))
    assert type(kept.get_submodule(name)) is torch.nn.Linear
    assert torch.equal(kept.get_submodule(name).weight, original.get_submodule(name).weight)
    assert kept.get_submodule("model.model.layers.1.mlp.down_proj").original_name == "Int4Linear"

    # An unreachable budget keeps layers float, most sensitive first (a one-layer model: 8 layers to weigh).
    small, _ = load_model(_decoder_zip(tmp_path, "llama", layers=1))
    config = QuantizeConfig(variant="weight_only_int8", budget_metric="cosine", budget_min=1.0)
    result = quantize(small, None, config, NullReporter(), example=torch.zeros(1, 16, dtype=torch.int64))
    kept_float = result.extras["kept_float"]
    assert kept_float and result.extras["budget"]["met"] is False
    assert set(result.extras["sensitivity"]) == set(_quantizer(small, "weight_only_int8").layers())
    assert result.model.get_submodule(kept_float[0]).original_name in ("Linear", "Embedding")


def test_a_one_token_example_still_gives_a_causal_model_for_longer_inputs(decoders):
    original, _ = load_model(decoders["gpt2"])
    quantizer = _quantizer(original, "weight_only_int8", example=torch.zeros(1, 1, dtype=torch.int64))
    quantized = quantizer.quantize()
    traced = quantizer.finish(quantized)
    ids = torch.randint(0, 300, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(traced(ids), quantized(ids), atol=1e-4)
    assert not any("answers correctly only" in note for note in quantizer.notes)


def test_int4_layers_whose_shape_the_kernel_refuses_are_int8_and_said_so():
    layer = torch.nn.Sequential(torch.nn.Linear(64, 24), torch.nn.Linear(24, 32))  # 24 outputs; 24 inputs
    quantizer = WeightOnlyQuantizer(layer, QuantizeConfig(variant="weight_only_int4", group_size=32),
                                    lookup("weight_only_int4", "transformers"), NullReporter(),
                                    example=torch.randn(2, 64))
    quantized = quantizer.quantize()
    assert [quantized.get_submodule(name).original_name for name in ("0", "1")] == ["Int8Linear", "Int8Linear"]
    assert any("2 linear layer(s) are int8, not int4" in note for note in quantizer.notes)


def _quantizer(model, variant: str, example: torch.Tensor | None = None) -> WeightOnlyQuantizer:
    return WeightOnlyQuantizer(model, QuantizeConfig(variant=variant), lookup(variant, "transformers"),
                               NullReporter(), example=torch.zeros(1, 16, dtype=torch.int64) if example is None
                               else example)


# -- the layers ------------------------------------------------------------------------------------------------


def test_int8_rows_round_each_value_to_within_half_a_step():
    weight = torch.randn(48, 80) * torch.linspace(0.01, 3, 48)[:, None]
    values, scale = int8_rows(weight)
    assert values.dtype == torch.int8 and scale.shape == (48,)
    error = (values.float() * scale[:, None] - weight).abs()
    assert bool((error <= scale[:, None] / 2 + 1e-7).all())
    _, one_scale = int8_rows(weight, per_channel=False)
    assert torch.equal(one_scale, one_scale[:1].expand(48))


def test_int4_groups_reproduce_weights_that_already_sit_on_a_4_bit_grid():
    generator = torch.Generator().manual_seed(0)
    rows, width, group = 32, 128, 32
    levels = torch.randint(0, 16, (rows, width // group, group), generator=generator)
    levels[..., 0], levels[..., 1] = 0, 15  # every group spans its grid
    step = torch.rand(rows, width // group, 1, generator=generator) * 0.1 + 0.01
    offset = torch.randn(rows, width // group, 1, generator=generator) * 0.05
    weight = (levels * step + offset).reshape(rows, width)
    nibbles, scales_and_zeros = int4_groups(weight, group)
    assert nibbles.shape == (rows, width // 2) and scales_and_zeros.shape == (width // group, rows, 2)
    layer = scripted(Int4Linear(nibbles, scales_and_zeros, None, group))
    assert torch.equal(layer._unpacked(nibbles).reshape(levels.shape).long(), levels)
    # Only the bfloat16 rounding of the scale and zero (a 2**-8 relative step) is left.
    restored = layer._dequantized().float().reshape(levels.shape)
    bound = (offset.abs() + 16 * step) * 2 ** -7
    assert bool(((restored - levels * step - offset).abs() <= bound).all())


def test_the_kernel_path_and_the_dequantized_path_agree():
    generator = torch.Generator().manual_seed(1)
    weight, bias = torch.randn(64, 96, generator=generator), torch.randn(64, generator=generator)
    int4 = scripted(Int4Linear(*int4_groups(weight, 32), bias, 32))
    int8 = scripted(Int8Linear(*int8_rows(weight), bias))
    odd = scripted(Int8Linear(*int8_rows(weight[:, :40]), None))  # 40 inputs: the int8 kernel would crash
    few, many = torch.randn(3, 96, generator=generator), torch.randn(200, 96, generator=generator)
    for layer, rows in ((int4, few), (int4, many), (int8, few), (int8, many)):
        dequantized = _dequantized(layer)
        expected = F.linear(rows, dequantized, bias)
        assert torch.allclose(layer(rows), expected, rtol=0.02, atol=0.05 * float(expected.abs().max()))
    assert odd(few[:, :40]).shape == (3, 64)
    exact = F.linear(few, weight, bias)
    assert _mean_cosine(exact, int8(few)) > 0.9999 and _mean_cosine(exact, int4(few)) > 0.99


def _dequantized(layer) -> torch.Tensor:
    if layer.original_name == "Int4Linear":
        return layer._dequantized().float()
    return layer.weight.float() * layer.scale[:, None]


def test_a_saved_int4_layer_keeps_the_portable_form_and_packs_it_again_when_loaded(tmp_path):
    weight = torch.randn(32, 64)
    layer = scripted(Int4Linear(*int4_groups(weight, 64), None, 64))
    torch.jit.save(layer, str(tmp_path / "layer.pt"))
    with zipfile.ZipFile(tmp_path / "layer.pt") as archive:
        sizes = sorted(info.file_size for info in archive.infolist() if "/data/" in info.filename)
    assert sizes == [0, 32 * 2 * 2, 32 * 64 // 2]  # the empty bias, scales and zeros, the nibbles: no packed copy
    loaded = torch.jit.load(str(tmp_path / "layer.pt"))
    rows = torch.randn(4, 64)
    assert torch.equal(loaded(rows), layer(rows))
