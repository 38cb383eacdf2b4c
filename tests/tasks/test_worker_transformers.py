"""Transformers through the real worker: a zipped Hugging Face folder and a text dataset uploaded through the API,
distilled into a shallower student whose downloaded folder loads with from_pretrained and answers like the report
says, and hostile folders refused with their reason before anything of them runs."""
import io
import json
import zipfile

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.hf_folders import bert_folder, word_lines
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
transformers = pytest.importorskip("transformers")


def _settled(api, url, pending=("pending",)):
    body = api.get(url).json()
    return None if body["status"] in pending else body


def _zipped(folder, extra: dict[str, bytes] | None = None, drop: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(folder.iterdir()):
            if file.name not in drop:
                archive.write(file, f"bert/{file.name}")
        for name, data in (extra or {}).items():
            archive.writestr(f"bert/{name}", data)
    return buffer.getvalue()


def _upload_model(api, name: str, content: bytes) -> dict:
    response = api.post("/api/models/", {"file": SimpleUploadedFile(name, content), "name": name,
                                         "input_shape": "1,16", "input_dtype": "int64"}, format="multipart")
    assert response.status_code == 201, response.content
    return wait_until(lambda: _settled(api, f"/api/models/{response.json()['id']}/"), timeout=120,
                      what=f"the inspection of {name}")


def _download(api, url: str) -> bytes:
    response = api.get(url)
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_a_bert_folder_distils_on_text_into_a_student_folder_that_from_pretrained_loads(
        celery_worker, alice_api, tmp_path):
    bert_folder(tmp_path / "bert")
    teacher = _upload_model(alice_api, "bert.zip", _zipped(tmp_path / "bert"))
    assert teacher["status"] == "ready" and teacher["format"] == "hf", teacher["error"]
    assert teacher["info"]["recipes"]["distill"]["variants"]["thinner_copy"]["applicable"] is True
    lines = word_lines()
    created = alice_api.post("/api/datasets/", {
        "name": "lines.txt", "kind": "text", "file": SimpleUploadedFile("lines.txt", "\n".join(lines).encode()),
        "options": json.dumps({"sequence_length": 16})}, format="multipart")
    assert created.status_code == 201, created.content
    dataset = wait_until(lambda: _settled(alice_api, f"/api/datasets/{created.json()['id']}/"), timeout=90,
                         what="the text dataset")
    assert dataset["status"] == "ready", dataset["error"]
    response = alice_api.post("/api/experiments/", {
        "model": teacher["id"], "dataset": dataset["id"], "recipe": "distill",
        "config": {"student": "thinner_copy", "student_depth": "half", "loss": "cosine", "epochs": 2,
                   "batch_size": 16, "learning_rate": 1e-3, "compare_without_teacher": False}}, format="json")
    assert response.status_code == 201, response.content
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=300, what="distill")
    assert experiment["status"] == "succeeded", experiment["error"]
    report = experiment["summary"]
    assert report["primary_format"] == "hf" and report["after"]["params"] < report["before"]["params"]
    assert "texts were tokenized" in report["data"]["note"]
    artifacts = {artifact["name"]: artifact for artifact in experiment["artifacts"]}
    with zipfile.ZipFile(io.BytesIO(_download(alice_api, artifacts["model.zip"]["url"]))) as archive:
        assert not any(name.endswith((".bin", ".pt", ".py")) for name in archive.namelist())
        archive.extractall(tmp_path / "student")
    student = transformers.BertModel.from_pretrained(tmp_path / "student", local_files_only=True).eval()
    original = transformers.BertModel.from_pretrained(tmp_path / "bert", local_files_only=True).eval()
    assert student.config.num_hidden_layers == 1
    # Answers like the report says: the mean cosine to the original on the validation split's token ids.
    from optimizers.data.tokens import token_splits
    from optimizers.formats.model_io import load_model

    upload, _ = load_model(_write(tmp_path / "bert.zip", _zipped(tmp_path / "bert")))
    dataset_npz = tmp_path / "dataset.npz"
    dataset_npz.write_bytes(_dataset_file(dataset))
    ids = token_splits(dataset_npz, upload).val_x
    mask = (ids != 0).long()
    with torch.no_grad():
        got = student(input_ids=ids, attention_mask=mask).last_hidden_state.flatten(1)
        expected = original(input_ids=ids, attention_mask=mask).last_hidden_state.flatten(1)
    cosine = torch.nn.functional.cosine_similarity(got.double(), expected.double(), dim=1).mean().item()
    assert cosine == pytest.approx(report["after"]["output_error"]["mean_cosine"], abs=1e-4)


def _write(path, content: bytes):
    path.write_bytes(content)
    return path


def _dataset_file(dataset: dict) -> bytes:
    """The prepared dataset.npz, as the worker wrote it (read through the storage API, as a worker reads it)."""
    from webapp.models import DatasetFile

    with DatasetFile.objects.get(dataset_id=dataset["id"], name="dataset.npz").file.open("rb") as file:
        return file.read()


@pytest.mark.parametrize(("extra", "drop", "reason"), [
    ({"config.json": json.dumps({"model_type": "bert", "architectures": ["BertModel"],
                                 "auto_map": {"AutoModel": "modeling_evil.EvilModel"}}).encode()},
     ("config.json",), "remote code"),
    ({"pytorch_model.bin": b"\x80\x04pickled"}, ("model.safetensors",), "pickled weights"),
    ({"tokenizer_config.json": json.dumps({"vocab_file": "../../etc/passwd"}).encode()},
     ("tokenizer_config.json",), "points outside the folder"),
])
def test_a_hostile_folder_is_refused_with_its_reason(celery_worker, alice_api, tmp_path, extra, drop, reason):
    bert_folder(tmp_path / "bert")
    model = _upload_model(alice_api, "evil.zip", _zipped(tmp_path / "bert", extra=extra, drop=drop))
    assert model["status"] == "failed" and reason in model["error"], model["error"]


def test_a_decoder_quantized_weight_only_reports_perplexity_before_and_after(celery_worker, alice_api, tmp_path):
    from tests.hf_folders import BPE_TEXTS, decoder_folder

    original = decoder_folder(tmp_path / "llama", "llama", tokenizer_files="tokenizer.json")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted((tmp_path / "llama").iterdir()):
            archive.write(file, file.name)
    model = _upload_model(alice_api, "llama.zip", buffer.getvalue())
    assert model["status"] == "ready" and model["info"]["hf"]["family"] == "llama", model["error"]
    assert model["info"]["report"]["generation"]["tokens_per_s"]["batch_1"] > 0  # measured at inspection too
    prose = SimpleUploadedFile("prose.txt", "\n".join(BPE_TEXTS * 10).encode())
    created = alice_api.post("/api/datasets/", {
        "name": "prose.txt", "kind": "text", "file": prose,
        "options": json.dumps({"sequence_length": 16})}, format="multipart")
    dataset = wait_until(lambda: _settled(alice_api, f"/api/datasets/{created.json()['id']}/"), timeout=90,
                         what="the text dataset")
    assert dataset["status"] == "ready", dataset["error"]
    response = alice_api.post("/api/experiments/", {"model": model["id"], "dataset": dataset["id"],
                                                    "recipe": "quantize", "config": {"variant": "weight_only_int8"}},
                              format="json")
    assert response.status_code == 201, response.content
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=300, what="quantize")
    assert experiment["status"] == "succeeded", experiment["error"]
    report = experiment["summary"]
    before, after = report["before"]["perplexity"], report["after"]["perplexity"]
    assert before > 1 and after == pytest.approx(before, rel=0.05), (before, after)
    assert "blocks" in report["data"]["note"] and report["ratios"]["perplexity"] is not None
    artifacts = {artifact["name"]: artifact for artifact in experiment["artifacts"]}
    quantized = torch.jit.load(io.BytesIO(_download(alice_api, artifacts["model.pt"]["url"])))
    ids = torch.arange(3, 24).reshape(1, -1)  # longer than the 16 tokens it was traced with
    with torch.no_grad():
        expected = original(input_ids=ids).logits
        cosine = torch.nn.functional.cosine_similarity(quantized(ids).reshape(-1, expected.shape[-1]),
                                                       expected.reshape(-1, expected.shape[-1]), dim=1)
    assert cosine.min() > 0.99
