"""A model transformers built from an uploaded folder is written back as a zipped Hugging Face folder (model.zip):
it loads with `from_pretrained` once unzipped, uploads again as it is, and answers like the model it was made from."""
import zipfile

import pytest
import torch

from optimizers.formats.hf_folder import HF, TokenIdsModel
from optimizers.formats.model_io import load_model
from optimizers.formats.save_all import save_all_formats
from tests.hf_folders import bert_folder, zip_folder

transformers = pytest.importorskip("transformers")


def test_a_bert_result_is_written_as_a_folder_that_from_pretrained_loads(tmp_path):
    bert_folder(tmp_path / "bert")
    model, _ = load_model(zip_folder(tmp_path / "bert", tmp_path / "upload"))
    ids = torch.tensor([[2, 5, 6, 7, 3, 0, 0], [2, 8, 9, 1, 3, 4, 3]])  # padded: the encoder masks id 0 itself
    saved = save_all_formats(model, tmp_path / "out", ids, primary=HF, architecture=None)
    assert saved.files[HF] == "model.zip" and "torchscript" in saved.files
    with zipfile.ZipFile(tmp_path / "out" / "model.zip") as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "unzipped")
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"} <= names
    assert not any(name.endswith((".bin", ".py")) for name in names)
    again = transformers.BertModel.from_pretrained(tmp_path / "unzipped", local_files_only=True).eval()
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = model(ids)
        assert torch.allclose(again(input_ids=ids, attention_mask=mask).last_hidden_state, expected, atol=1e-5)
        reloaded, fmt = load_model(tmp_path / "out" / "model.zip")
        assert fmt == HF and isinstance(reloaded, TokenIdsModel)
        assert torch.allclose(reloaded(ids), expected, atol=1e-5)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "unzipped", local_files_only=True)
    assert tokenizer("the model")["input_ids"][0] == 2  # [CLS]: the upload's own tokenizer came along


def test_the_padding_mask_keeps_a_sentence_embedding_independent_of_its_padding(tmp_path):
    bert_folder(tmp_path / "bert")
    model, _ = load_model(zip_folder(tmp_path / "bert", tmp_path / "upload"))
    short, padded = torch.tensor([[2, 5, 6, 3]]), torch.tensor([[2, 5, 6, 3, 0, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(model(short), model(padded)[:, :4], atol=1e-5)


def test_other_models_are_not_offered_as_hugging_face_folders(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    saved = save_all_formats(module, tmp_path, torch.randn(1, 4), primary="torchscript", architecture=None)
    assert HF not in saved.files and HF not in saved.skipped
