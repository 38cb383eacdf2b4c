"""Zipped Hugging Face folders: recognised, checked before anything loads, built by transformers from safetensors.

The folders are made by tests/hf_folders.py: small random models of the real classes, written by save_pretrained
(safetensors), with a real WordPiece tokenizer built from a tiny vocabulary.
"""
import json
from pathlib import Path

import pytest
import torch

from optimizers.errors import ModelFileError
from optimizers.formats.hf_folder import HF, describe
from optimizers.formats.model_io import detect_format, load_model
from tests.hf_folders import VOCAB, bert_folder, zip_folder

transformers = pytest.importorskip("transformers")

@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert")
    return folder, bert_folder(folder)


def test_a_bert_folder_is_recognised_built_and_answers_like_the_original(bert, tmp_path):
    folder, original = bert
    path = zip_folder(folder, tmp_path / "upload")  # stored under a server-made name: the bytes decide
    assert detect_format(path) == HF
    model, fmt = load_model(path)
    assert fmt == HF
    ids = torch.tensor([[2, 5, 6, 7, 3], [2, 8, 9, 1, 3]])
    with torch.no_grad():
        assert torch.allclose(model(ids), original(input_ids=ids).last_hidden_state)
    facts = describe(model)
    assert facts == {"family": "bert", "architecture": "BertModel", "layers": 2, "hidden_size": 32,
                     "vocab_size": len(VOCAB), "params": sum(p.numel() for p in original.parameters()),
                     "tokenizer": ["tokenizer.json", "tokenizer_config.json", "vocab.txt"]}


def test_a_decoder_language_model_gives_its_logits(tmp_path):
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(1)
    original = transformers.LlamaForCausalLM(config).eval()
    original.save_pretrained(tmp_path / "llama")
    model, fmt = load_model(zip_folder(tmp_path / "llama", tmp_path / "llama.zip", root=""))
    ids = torch.randint(0, 64, (1, 9))
    with torch.no_grad():
        logits = model(ids)
        assert logits.shape == (1, 9, 64) and torch.allclose(logits, original(input_ids=ids).logits)


def _refusal(bert, tmp_path, *, config=None, tokenizer_config=None, extra=None, drop=()) -> str:
    folder, _ = bert
    copy = tmp_path / "copy"
    copy.mkdir(parents=True)
    for file in folder.iterdir():
        if file.name not in drop:
            (copy / file.name).write_bytes(file.read_bytes())
    for name, change in (("config.json", config), ("tokenizer_config.json", tokenizer_config)):
        if change:
            data = json.loads((copy / name).read_text())
            data.update(change)
            (copy / name).write_text(json.dumps(data))
    with pytest.raises(ModelFileError) as refused:
        load_model(zip_folder(copy, tmp_path / "hostile.zip", extra=extra))
    return str(refused.value)


def test_a_config_asking_for_remote_code_is_refused(bert, tmp_path):
    message = _refusal(bert, tmp_path, config={"auto_map": {"AutoModel": "modeling_evil.EvilModel"}},
                       extra={"my-model/modeling_evil.py": b"import os; os.system('touch /tmp/pwned')"})
    assert "remote code" in message or "is code" in message
    assert not Path("/tmp/pwned").exists()
    assert "remote code (auto_map)" in _refusal(bert, tmp_path / "b", config={"auto_map": {"AutoModel": "x.Y"}})


def test_pickled_weights_instead_of_safetensors_are_refused(bert, tmp_path):
    message = _refusal(bert, tmp_path, drop=("model.safetensors",),
                       extra={"my-model/pytorch_model.bin": b"\x80\x04not really a pickle"})
    assert message.startswith("'pytorch_model.bin' holds pickled weights") and ".safetensors" in message


def test_a_tokenizer_pointing_outside_the_folder_is_refused(bert, tmp_path):
    message = _refusal(bert, tmp_path, tokenizer_config={"vocab_file": "../../../etc/passwd"})
    assert "points outside the folder" in message and "vocab_file" in message


def test_paths_that_climb_out_and_unknown_families_are_refused(bert, tmp_path):
    assert "points outside the folder" in _refusal(bert, tmp_path, extra={"my-model/../../evil.txt": b"x"})
    assert "has no file name" in _refusal(bert, tmp_path / "a", extra={"my-model/.": b"x"})
    message = _refusal(bert, tmp_path / "b", config={"model_type": "evil_net", "architectures": ["EvilNet"]})
    assert "model_type 'evil_net' is not one Slimforge builds" in message
    message = _refusal(bert, tmp_path / "c", config={"architectures": ["BertForPreTraining"]})
    assert "BertForPreTraining" in message and "BertModel" in message


def test_duplicates_bombs_quantized_checkpoints_and_shards_outside_the_folder_are_refused(bert, tmp_path):
    assert "the same file name twice" in _refusal(bert, tmp_path, extra={"my-model/vocab.txt": b"[PAD]"})
    message = _refusal(bert, tmp_path / "b", extra={"my-model/added_tokens.json": b" " * (8 * 1024 * 1024)})
    assert "times its compressed size" in message and "zip bomb" in message
    message = _refusal(bert, tmp_path / "c", config={"quantization_config": {"quant_method": "bitsandbytes"}})
    assert "already-quantized" in message
    index = json.dumps({"weight_map": {"embeddings.word_embeddings.weight": "../../elsewhere.safetensors"}})
    message = _refusal(bert, tmp_path / "d", extra={"my-model/model.safetensors.index.json": index.encode()})
    assert "names the shard '../../elsewhere.safetensors'" in message


def test_the_sandbox_child_inspects_a_folder_fed_token_ids(bert, tmp_path, run_python):
    folder, original = bert
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"action": "inspect", "model_path": str(zip_folder(folder, tmp_path / "upload")),
                                "input_shape": [1, 8], "input_dtype": "int64"}))
    finished = run_python("-m", "optimizers.job_child", str(spec))
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout.splitlines()[-1])["result"]
    assert (result["format"], result["output_shape"], result["output_dtype"]) == ("hf", [1, 8, 32], "float32")
    assert result["hf"]["family"] == "bert" and result["hf"]["params"] == result["params"]
    assert result["params"] == sum(p.numel() for p in original.parameters())
    assert result["recipes"]["quantize"]["applicable"] is True
