"""Distilling a transformers model: the student keeps every other layer of the teacher (DistilBERT's start), stays a
model of the same class, and is saved as a Hugging Face folder that from_pretrained loads with its new depth."""
import zipfile

import pytest
import torch

from optimizers.configs.distill import HALF_DEPTH, SAME_DEPTH
from optimizers.formats.hf_folder import HF
from optimizers.formats.model_io import load_model
from optimizers.formats.save_all import save_all_formats
from optimizers.recipes.distill.shallower_transformers import layer_count, shallower_copy
from optimizers.recipes.distill.thinner import thinner_applies
from tests.hf_folders import bert_folder, prepared_text_dataset, word_lines, zip_folder

transformers = pytest.importorskip("transformers")


def _llama_folder(folder):
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(1)
    transformers.LlamaForCausalLM(config).eval().save_pretrained(folder)


def test_a_half_depth_bert_student_starts_from_the_teachers_even_layers(tmp_path):
    bert_folder(tmp_path / "bert")
    teacher, _ = load_model(zip_folder(tmp_path / "bert", tmp_path / "upload"))
    assert thinner_applies(teacher)[0]
    student, architecture, notes = shallower_copy(teacher, 1.0, HALF_DEPTH)
    assert architecture is None and layer_count(student) == 1 and layer_count(teacher) == 2
    assert student.folder.config["num_hidden_layers"] == 1 and "1 of the teacher's 2 layers (0)" in notes[0]
    assert torch.equal(student.model.encoder.layer[0].output.dense.weight,
                       teacher.model.encoder.layer[0].output.dense.weight)
    ids = torch.tensor([[2, 5, 6, 7, 3]])
    with torch.no_grad():
        assert student(ids).shape == teacher(ids).shape
    saved = save_all_formats(student, tmp_path / "out", ids, primary=HF, architecture=None)
    with zipfile.ZipFile(tmp_path / "out" / saved.files[HF]) as archive:
        archive.extractall(tmp_path / "unzipped")
    again = transformers.BertModel.from_pretrained(tmp_path / "unzipped", local_files_only=True)
    assert again.config.num_hidden_layers == 1


def test_a_half_depth_decoder_renumbers_its_cache_layers_and_keeps_answering(tmp_path):
    _llama_folder(tmp_path / "llama")
    teacher, _ = load_model(zip_folder(tmp_path / "llama", tmp_path / "upload", root=""))
    student, _, _ = shallower_copy(teacher, 0.5, HALF_DEPTH)
    kept = student.model.model.layers
    assert len(kept) == 2 and [layer.self_attn.layer_idx for layer in kept] == [0, 1]
    assert torch.equal(kept[1].mlp.up_proj.weight, teacher.model.model.layers[2].mlp.up_proj.weight)
    ids = torch.randint(0, 64, (2, 7))
    with torch.no_grad():
        assert student(ids).shape == (2, 7, 64)
    same, _, _ = shallower_copy(teacher, 1.0, SAME_DEPTH)
    with torch.no_grad():
        assert torch.allclose(same(ids), teacher(ids))


def test_a_bert_teacher_distills_on_text_into_a_half_depth_folder_through_the_job(tmp_path):
    from optimizers.job_runner import run_recipe
    from optimizers.job_spec import JobSpec
    from optimizers.reporters import NullReporter

    bert_folder(tmp_path / "bert")
    upload = zip_folder(tmp_path / "bert", tmp_path / "upload")
    dataset = prepared_text_dataset(tmp_path / "data", word_lines())
    job = JobSpec.from_dict({
        "action": "run", "model_path": str(upload), "input_shape": [1, 16], "input_dtype": "int64",
        "recipe": "distill", "out_dir": str(tmp_path / "out"), "dataset_path": str(dataset),
        "config": {"student": "thinner_copy", "student_depth": "half", "loss": "cosine", "epochs": 2,
                   "batch_size": 16, "learning_rate": 1e-3, "compare_without_teacher": False}})
    result = run_recipe(job, NullReporter())
    assert result["primary_format"] == "hf" and "model.zip" in result["artifacts"]
    assert result["after"]["params"] < result["before"]["params"]
    assert result["before"]["evaluated_on"] == "val split" and result["data"]["sample_shape"] == [16]
    assert 0.5 < result["after"]["output_error"]["mean_cosine"] <= 1.0
    with zipfile.ZipFile(tmp_path / "out" / "model.zip") as archive:
        archive.extractall(tmp_path / "student")
    student = transformers.BertModel.from_pretrained(tmp_path / "student", local_files_only=True)
    assert student.config.num_hidden_layers == 1
