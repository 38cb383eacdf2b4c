"""Structured pruning of transformers models: attention heads and feed-forward neurons really go, the parameters
reach the target, the result keeps answering at any batch and length, a result the config still describes is saved
as a Hugging Face folder again (and one with fewer heads as TorchScript), and fine-tuning on the original's outputs
needs no labels and brings the outputs back towards the original's."""
import zipfile

import pytest
import torch
from torch.nn import functional as F

from optimizers.configs.prune import PruneConfig
from optimizers.data.splits import DataSplits
from optimizers.errors import ConfigError, RecipeError
from optimizers.formats.hf_folder import HF
from optimizers.formats.model_io import load_model
from optimizers.formats.save_all import save_all_formats
from optimizers.recipes.prune.objective import objective_for
from optimizers.recipes.prune.recipe import prune
from optimizers.recipes.prune.structured import structured_applies
from optimizers.recipes.prune.transformer_units import GPT2_REFUSAL
from optimizers.recipes.prune.transformers_structured import HEADS_NOTE, prune_once
from optimizers.reporters import NullReporter
from tests.hf_folders import bert_folder, decoder_folder, prepared_text_dataset, word_lines, zip_folder

transformers = pytest.importorskip("transformers")


def _bert(tmp_path, **options):
    bert_folder(tmp_path / "bert", **options)
    model, _ = load_model(zip_folder(tmp_path / "bert", tmp_path / "bert.zip"))
    return model


def _ids(rows: int, length: int = 12, seed: int = 0) -> torch.Tensor:
    ids = torch.randint(5, 34, (rows, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0], ids[:, -1] = 2, 3
    ids[::3, -4:] = 0  # some padded rows: the model masks them itself
    return ids


def _texts(rows: int = 96) -> DataSplits:
    ids = _ids(rows)
    split = rows * 3 // 4
    return DataSplits(ids[:split], None, ids[split:], None, input_dtype="int64")


def _structured(**values) -> PruneConfig:
    return PruneConfig(**{"method": "structured", "target_macs_ratio": 1.0, "fine_tune_on": "original_outputs",
                          "agp_steps": 1, "epochs": 1, "batch_size": 16, "learning_rate": 1e-3, **values})


def _params(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def test_a_bert_loses_heads_and_neurons_to_the_target_and_keeps_answering_at_any_batch_and_length(tmp_path):
    model = _bert(tmp_path)
    assert structured_applies(model) == (True, structured_applies(model)[1])
    result = prune(model, _texts(), _structured(target_params_ratio=0.6, agp_steps=2), NullReporter(),
                   example=model.example_ids((1, 12)))
    pruned = result.model
    ratio = _params(pruned) / _params(model)
    assert 0.55 < ratio <= 0.6 and result.extras["params_after"] == _params(pruned)
    layers = pruned.model.encoder.layer
    assert [layer.attention.self.num_attention_heads for layer in layers] == [1, 1]
    assert [layer.attention.self.query.out_features for layer in layers] == [16, 16]
    assert [layer.attention.output.dense.in_features for layer in layers] == [16, 16]
    kept = {layer.intermediate.dense.out_features for layer in layers}
    assert len(kept) == 1 and kept == {layer.output.dense.in_features for layer in layers} and kept.pop() < 64
    assert result.primary_format == "torchscript" and HEADS_NOTE in result.notes
    assert result.extras["heads"] == [[2, 1], [2, 1]]
    for shape in ((1, 5), (3, 20), (7, 12)):
        ids = _ids(shape[0], shape[1], seed=1)
        with torch.no_grad():
            assert pruned(ids).shape == model(ids).shape == (*shape, 32)
    assert _params(model) == 21408  # the upload itself is never changed


def test_a_result_that_kept_its_heads_is_saved_as_a_folder_from_pretrained_loads(tmp_path):
    model = _bert(tmp_path)
    result = prune(model, _texts(), _structured(target_params_ratio=0.85), NullReporter(),
                   example=model.example_ids((1, 12)))
    pruned = result.model
    width = pruned.model.encoder.layer[0].intermediate.dense.out_features
    assert width < 64 and result.extras["heads"] == [[2, 2], [2, 2]] and result.primary_format is None
    assert pruned.model.config.intermediate_size == pruned.folder.config["intermediate_size"] == width
    assert _params(pruned) / _params(model) <= 0.85
    ids = _ids(4, 9, seed=2)
    saved = save_all_formats(pruned, tmp_path / "out", ids[:1], primary=HF, architecture=None)
    with zipfile.ZipFile(tmp_path / "out" / saved.files[HF]) as archive:
        archive.extractall(tmp_path / "unzipped")
    again = transformers.BertModel.from_pretrained(tmp_path / "unzipped", local_files_only=True).eval()
    with torch.no_grad():
        expected = pruned(ids)
        got = again(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
    assert again.config.intermediate_size == width and torch.allclose(got, expected, atol=1e-5)


def test_fine_tuning_on_the_original_outputs_needs_no_labels_and_brings_the_outputs_back(tmp_path):
    model = _bert(tmp_path)
    with torch.no_grad():  # feed-forward layers that matter (random ones add next to nothing to the residual)
        for layer in model.model.encoder.layer:
            layer.intermediate.dense.weight.mul_(3)
            layer.output.dense.weight.mul_(25)
    data = _texts(160)
    config = _structured(target_params_ratio=0.7, epochs=4, importance="activation")
    example = model.example_ids((1, 12))
    at_once = prune_once(model, data, config, example, objective_for(config, model, data, example))
    result = prune(model, data, config, NullReporter(), example=example)

    def cosine(pruned) -> float:  # per unpadded position, on the validation split
        with torch.no_grad():
            similarity = F.cosine_similarity(pruned(data.val_x), model(data.val_x), dim=-1)
        return float(similarity[data.val_x != 0].mean())

    before, after = cosine(at_once), cosine(result.model)
    assert before < 0.98 and after > before + 0.01
    scores = result.extras["fine_tune_scores"]
    assert scores["score"] == "cosine" and scores["steps"][0]["pruned"] == pytest.approx(before, abs=2e-3)
    assert scores["steps"][0]["fine_tuned"] == pytest.approx(after, abs=2e-3)


def test_taylor_ranks_a_classifiers_heads_and_neurons_by_the_labels_loss(tmp_path):
    model = _bert(tmp_path, classes=2)
    ids = _ids(64)
    labels = (ids[:, 1] > 20).long()
    data = DataSplits(ids[:48], labels[:48], ids[48:], labels[48:], class_names=["a", "b"], input_dtype="int64")
    result = prune(model, data, _structured(target_params_ratio=0.8, fine_tune_on="labels", importance="taylor"),
                   NullReporter(), example=model.example_ids((1, 12)))
    assert _params(result.model) / _params(model) <= 0.8
    with torch.no_grad():
        assert result.model(ids[:3]).shape == (3, 2)
    unlabelled = DataSplits(ids[:48], None, ids[48:], None, input_dtype="int64")
    with pytest.raises(RecipeError, match="needs a dataset with labels"):
        prune(model, unlabelled, _structured(target_params_ratio=0.8, fine_tune_on="labels"), NullReporter(),
              example=model.example_ids((1, 12)))


def test_a_llama_loses_feed_forward_neurons_only_and_gpt2_is_refused_with_the_reason(tmp_path):
    decoder_folder(tmp_path / "llama", "llama", tokenizer_files="tokenizer.json")
    llama, _ = load_model(zip_folder(tmp_path / "llama", tmp_path / "llama.zip", root=""))
    applicable, reason = structured_applies(llama)
    assert applicable and "attention heads are kept" in reason
    ids = torch.randint(1, 300, (64, 10), generator=torch.Generator().manual_seed(0))
    data = DataSplits(ids[:48], None, ids[48:], None, input_dtype="int64")
    result = prune(llama, data, _structured(target_params_ratio=0.9), NullReporter(), example=ids[:1])
    mlp = result.model.model.model.layers[0].mlp
    assert mlp.up_proj.out_features == mlp.gate_proj.out_features == mlp.down_proj.in_features == mlp.intermediate_size
    assert mlp.intermediate_size < 64 and result.model.folder.config["intermediate_size"] == mlp.intermediate_size
    assert _params(result.model) / _params(llama) <= 0.9
    with torch.no_grad():
        assert result.model(ids[:2, :7]).shape == (2, 7, llama.folder.config["vocab_size"])
    decoder_folder(tmp_path / "gpt2", "gpt2")
    gpt2, _ = load_model(zip_folder(tmp_path / "gpt2", tmp_path / "gpt2.zip", root=""))
    assert structured_applies(gpt2) == (False, GPT2_REFUSAL)


def test_only_fine_tuning_on_labels_needs_labels_and_original_outputs_is_for_structured_pruning():
    assert PruneConfig().needs_labels() and "labelled" in PruneConfig().needs_dataset()
    matching = _structured(target_params_ratio=0.7)
    assert not matching.needs_labels() and "labels are not needed" in matching.needs_dataset()
    with pytest.raises(ConfigError, match="built for structured pruning"):
        PruneConfig(method="unstructured", fine_tune_on="original_outputs")


def test_a_job_prunes_a_bert_on_unlabelled_sentences_and_saves_torchscript_when_heads_went(tmp_path):
    from optimizers.job_runner import run_recipe
    from optimizers.job_spec import JobSpec

    bert_folder(tmp_path / "bert")
    upload = zip_folder(tmp_path / "bert", tmp_path / "upload.zip")
    dataset = prepared_text_dataset(tmp_path / "data", word_lines())
    result = run_recipe(JobSpec.from_dict({
        "action": "run", "model_path": str(upload), "input_shape": [1, 16], "input_dtype": "int64",
        "recipe": "prune", "out_dir": str(tmp_path / "out"), "dataset_path": str(dataset),
        "config": {"method": "structured", "target_macs_ratio": 1.0, "target_params_ratio": 0.6, "agp_steps": 1,
                   "fine_tune_on": "original_outputs", "epochs": 1, "batch_size": 16}}), NullReporter())
    assert result["primary_format"] == "torchscript" and "model.pt" in result["artifacts"]
    assert "does not load back" in result["formats"]["skipped"][HF]
    assert result["after"]["params"] <= 0.6 * result["before"]["params"]
    assert 0.5 < result["after"]["output_error"]["mean_cosine"] <= 1.0
    assert HEADS_NOTE in result["notes"]
