"""Jobs on text datasets and token ids, run in process: tokenized by the model's own tokenizer, measured on the
validation split's token ids, and refused with the reason where the dataset cannot feed the model."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from optimizers.data.errors import DatasetError
from optimizers.data.job import prepare_dataset
from optimizers.data.splits import split_indices
from optimizers.job_runner import inspect_model, run_recipe
from optimizers.job_spec import JobSpec
from optimizers.reporters import NullReporter
from tests.hf_folders import bert_folder, zip_folder

pytest.importorskip("transformers")

REVIEWS = [("the small model", "pos"), ("a b c", "neg"), ("model the small", "pos"), ("abc", "neg"),
           ("the model", "pos"), ("z y x", "neg"), ("small model", "pos"), ("q r s t", "neg")] * 3


def prepared(tmp_path: Path, kind: str, source: Path | None, **options) -> Path:
    spec = SimpleNamespace(dataset_kind=kind, dataset_source=str(source) if source else None,
                           dataset_options=options, out_dir=str(tmp_path / "prepared"))
    prepare_dataset(spec, NullReporter())
    return tmp_path / "prepared" / "dataset.npz"


@pytest.fixture(scope="module")
def bert_zip(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bert-classifier")
    bert_folder(root / "folder", classes=2)
    return zip_folder(root / "folder", root / "bert.zip")


def job(action: str, model: Path, dataset: Path, **values) -> JobSpec:
    return JobSpec.from_dict({"action": action, "model_path": str(model), "input_shape": [1, 8],
                              "input_dtype": "int64", "dataset_path": str(dataset), **values})


def test_quantize_a_bert_folder_measured_on_the_text_datasets_validation_token_ids(bert_zip, tmp_path):
    source = tmp_path / "reviews.csv"
    source.write_text("text,label\n" + "".join(f"{text},{label}\n" for text, label in REVIEWS))
    dataset = prepared(tmp_path, "text", source, format="csv", sequence_length=16)
    result = run_recipe(job("run", bert_zip, dataset, recipe="quantize", config={"variant": "fp16"},
                            out_dir=str(tmp_path / "out")), NullReporter())
    classes = np.array([int(label == "pos") for _, label in REVIEWS])  # named classes are numbered sorted: neg, pos
    _, val = split_indices(len(REVIEWS), classes, 0.2, 0)
    for report in (result["before"], result["after"]):
        assert report["evaluated_on"] == "val split" and report["quality_note"] is None
        assert report["accuracy"] is not None and report["output_error"]["samples"] == len(val)
    assert result["before"]["output_error"]["identical"] is True  # the original against itself
    after = result["after"]["output_error"]
    assert after["max_abs"] is not None and 0 < after["max_abs"] < 0.05 * after["reference_max_abs"]
    assert result["after"]["agreement_top1"] >= 0.9
    data = result["data"]
    assert data["sample_shape"] == [16] and data["sample_dtype"] == "int64" and data["adapted"] is True
    assert data["tokenized"]["rows"] == len(REVIEWS) and data["tokenized"]["layout"] == "rows"
    assert data["note"].startswith(f"{len(REVIEWS)} texts were tokenized by the model's tokenizer (tokenizer.json) "
                                   "into 24 rows of 16 token ids")
    assert data["note"] in result["notes"]


def test_an_npz_of_token_ids_feeds_a_bert_folder_and_ids_past_its_vocabulary_are_refused(bert_zip, tmp_path):
    ids = np.random.default_rng(0).integers(5, 34, size=(20, 12)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 2, 3
    (tmp_path / "a").mkdir()
    np.savez(tmp_path / "ids.npz", x=ids, y=np.arange(20) % 2)
    info = inspect_model(job("inspect", bert_zip, prepared(tmp_path / "a", "npz", tmp_path / "ids.npz")),
                         NullReporter())
    assert info["report"]["evaluated_on"] == "val split" and info["report"]["accuracy"] is not None
    ids[3, 4] = 34  # one past the 34-token vocabulary
    np.savez(tmp_path / "ids.npz", x=ids)
    (tmp_path / "b").mkdir()
    with pytest.raises(DatasetError, match="token ids do not fit the model: token id 34 is past the model's "
                                           "vocabulary of 34 tokens"):
        inspect_model(job("inspect", bert_zip, prepared(tmp_path / "b", "npz", tmp_path / "ids.npz")), NullReporter())


def test_texts_for_a_model_without_a_tokenizer_and_floats_for_token_ids_are_refused(mlp_pt, tmp_path):
    source = tmp_path / "texts.txt"
    source.write_text("one text\nanother text\n")
    texts = prepared(tmp_path, "text", source)
    float_job = JobSpec.from_dict({"action": "inspect", "model_path": str(mlp_pt), "input_shape": [1, 256],
                                   "dataset_path": str(texts)})
    with pytest.raises(DatasetError, match="needs a Hugging Face folder model"):
        inspect_model(float_job, NullReporter())
    np.savez(tmp_path / "features.npz", x=np.random.default_rng(0).random((10, 12), dtype=np.float32))
    token_model = tmp_path / "tokens.pt"
    torch.jit.save(torch.jit.script(torch.nn.Embedding(10, 4)), str(token_model))
    (tmp_path / "f").mkdir()
    features = prepared(tmp_path / "f", "npz", tmp_path / "features.npz")
    with pytest.raises(DatasetError, match="the model takes int64 token ids and the dataset holds float32 samples"):
        inspect_model(job("inspect", token_model, features), NullReporter())


def test_evaluation_and_calibration_batches_pass_token_ids_as_they_are():
    from optimizers.data.splits import DataSplits
    from optimizers.measure.fidelity import evaluation_inputs
    from optimizers.recipes.quantize.inputs import calibration_batches, evaluation_set

    ids = torch.randint(0, 2**40, (6, 40), generator=torch.Generator().manual_seed(0))  # longer than the example
    splits = DataSplits(ids[:4], None, ids[4:], None)
    example = torch.zeros(1, 8, dtype=torch.int64)
    inputs = evaluation_inputs(example, splits)
    assert inputs.source == "val split" and inputs.note is None
    assert inputs.fit(inputs.x).dtype == torch.int64 and torch.equal(inputs.fit(inputs.x), ids[4:])
    assert torch.equal(evaluation_set(splits, example, 10).inputs, ids[4:])
    assert torch.equal(torch.cat(calibration_batches(splits, example, 10)), ids[:4])
    floats = evaluation_inputs(example, DataSplits(ids[:4].float(), None, ids[4:].float(), None))
    assert floats.source == "example" and "takes int64 token ids and the dataset holds float32" in floats.note


def test_a_language_models_report_gives_perplexity_and_generation_speed_before_and_after(tmp_path):
    from tests.hf_folders import BPE_TEXTS, decoder_folder

    decoder_folder(tmp_path / "llama", "llama", tokenizer_files="tokenizer.json")
    upload = zip_folder(tmp_path / "llama", tmp_path / "llama.zip", root="")
    source = tmp_path / "prose.txt"
    source.write_text("\n".join(BPE_TEXTS * 8) + "\n")
    dataset = prepared(tmp_path, "text", source, format="txt", sequence_length=16)
    result = run_recipe(JobSpec.from_dict({
        "action": "run", "model_path": str(upload), "input_shape": [1, 16], "input_dtype": "int64",
        "dataset_path": str(dataset), "recipe": "quantize", "config": {"variant": "bf16"},
        "out_dir": str(tmp_path / "out")}), NullReporter())
    before, after = result["before"], result["after"]
    vocabulary = 300  # a random model guesses: its perplexity is near the vocabulary's size
    assert 0.3 * vocabulary < before["perplexity"] < 3 * vocabulary and before["perplexity_tokens"] > 0
    assert after["perplexity"] == pytest.approx(before["perplexity"], rel=0.05)  # bf16 barely moves it
    assert result["ratios"]["perplexity"] == pytest.approx(after["perplexity"] / before["perplexity"], abs=1e-3)
    for report in (before, after):
        generation = report["generation"]
        assert generation["prompt_tokens"] == 16 and generation["new_tokens"] == 16
        assert generation["time_to_first_token_ms"] > 0 and set(generation["tokens_per_s"]) == {"batch_1", "batch_8"}
        assert len(generation["continuation"]) == 16
