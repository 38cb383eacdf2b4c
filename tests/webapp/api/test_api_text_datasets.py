"""Text datasets and token ids on the web side: uploads checked before queueing, and the dataset/model pairs a
submit refuses (texts need a Hugging Face folder with a tokenizer; a model of token ids takes no floats)."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import ready_model
from webapp.models import Dataset, Experiment

pytestmark = pytest.mark.django_db


def _upload(api, name: str, content: bytes, **options):
    body = {"name": "texts", "kind": "text", "file": SimpleUploadedFile(name, content)}
    if options:
        body["options"] = json.dumps(options)
    return api.post("/api/datasets/", body, format="multipart")


def test_a_text_upload_is_queued_with_its_format_from_the_file_name(alice_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _upload(alice_api, "reviews.JSONL", b'{"text": "caf\xc3\xa9", "label": 1}\n', sequence_length="64")
    assert response.status_code == 201, response.content
    assert response.json()["options"] == {"sequence_length": 64, "format": "jsonl"} and len(callbacks) == 1
    given = _upload(alice_api, "export.dat", b"one\ntwo\n", format="txt", text_column="body")
    assert given.status_code == 201 and given.json()["options"] == {"format": "txt", "text_column": "body"}


@pytest.mark.parametrize(("name", "content", "options", "field", "problem"), [
    ("photo.txt", b"\x89PNG\r\n\x1a\n" + bytes(100), {}, "file", "Not a text file: this looks like a PNG image"),
    ("data.csv", b"PK\x03\x04" + bytes(100), {}, "file", "this looks like a zip archive"),
    ("noise.txt", b"abc\x00\x01\x02", {}, "file", "it holds NUL bytes"),
    ("latin.txt", "caf\xe9 au lait\n".encode("latin-1"), {}, "file", "Not UTF-8 text: byte 0xe9 at offset 3"),
    ("texts.parquet", b"one\ntwo\n", {}, "file", "a file ending in .txt, .jsonl, .csv"),
    ("t.txt", b"one\ntwo\n", {"sequence_length": 5000}, "options.sequence_length", "from 8 to 4096"),
    ("t.txt", b"one\ntwo\n", {"format": "xml"}, "options.format", "must be one of txt, jsonl, csv"),
])
def test_bad_text_uploads_are_a_400_naming_the_field(alice_api, name, content, options, field, problem):
    response = _upload(alice_api, name, content, **options)
    assert response.status_code == 400, response.content
    assert problem in " ".join(response.json()[field])
    assert Dataset.objects.count() == 0


def test_a_utf8_character_cut_by_the_sniffed_sample_is_not_refused(alice_api):
    content = b"a" * (64 * 1024 - 1) + "é\n".encode() + b"second\n"  # "é" straddles the first 64 KiB
    assert _upload(alice_api, "long.txt", content).status_code == 201


def _dataset(owner, **info) -> Dataset:
    kind = "text" if info.get("dtype") == "text" else "npz"
    return Dataset.objects.create(owner=owner, name="d", kind=kind, status="ready",
                                  info={"samples": 10, "has_labels": True, **info})


def _hf_model(owner, tokenizer_files: list[str]):
    model = ready_model(owner, name="bert")
    model.format, model.input_shape, model.input_dtype = "hf", [1, 16], "int64"
    model.info = {**model.info, "format": "hf", "hf": {"family": "bert", "tokenizer": tokenizer_files}}
    model.save()
    return model


def _submit(api, model, dataset):
    return api.post("/api/experiments/", {"model": model.pk, "recipe": "quantize", "dataset": dataset.pk,
                                          "config": {"variant": "fp16"}}, format="json")


def test_texts_are_refused_for_a_model_without_a_tokenizer_at_submit(alice, alice_api):
    texts = _dataset(alice, sample_shape=None, dtype="text")
    refused = _submit(alice_api, ready_model(alice), texts)  # a TorchScript model of [1, 64] floats
    assert refused.status_code == 400
    assert "needs a Hugging Face folder model" in " ".join(refused.json()["dataset"])
    bare = _submit(alice_api, _hf_model(alice, ["tokenizer_config.json"]), texts)
    assert bare.status_code == 400 and "has no tokenizer" in " ".join(bare.json()["dataset"])
    fine = _submit(alice_api, _hf_model(alice, ["tokenizer_config.json", "vocab.txt"]), texts)
    assert fine.status_code == 201, fine.json()
    assert Experiment.objects.count() == 1


def test_a_model_of_token_ids_takes_token_ids_of_any_length_and_never_floats(alice, alice_api):
    bert = _hf_model(alice, ["tokenizer.json"])
    floats = _dataset(alice, sample_shape=[16], dtype="float32")
    refused = _submit(alice_api, bert, floats)
    assert refused.status_code == 400
    assert "takes int64 token ids and the dataset holds float32 samples" in " ".join(refused.json()["dataset"])
    assert _submit(alice_api, bert, _dataset(alice, sample_shape=[40], dtype="int64")).status_code == 201
    flat_model = ready_model(alice)  # [1, 64] floats: 64 token ids feed it as float values, as features
    assert _submit(alice_api, flat_model, _dataset(alice, sample_shape=[64], dtype="int64")).status_code == 201


def test_the_dataset_page_shows_the_first_rows_of_token_ids_and_the_first_texts(alice, client):
    ids = _dataset(alice, sample_shape=[40], dtype="int64", preview_ids=[[101, 7, 102], list(range(32))])
    texts = _dataset(alice, sample_shape=None, dtype="text", format="jsonl", sequence_length=64, characters=30,
                     longest_text_chars=20, preview_texts=[{"text": "<b>bold</b> & more", "label": "pos"}])
    client.force_login(alice)
    page = client.get(f"/datasets/{ids.pk}/").content.decode()
    assert "[40] int64 (token ids)" in page and "<code>101 7 102 …</code>" in page
    page = client.get(f"/datasets/{texts.pk}/").content.decode()
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in page and "· pos" in page and "jsonl · 30 characters" in page
    assert "64 tokens a text for an encoder, blocks of 64 for a decoder" in page
    listing = client.get("/datasets/").content.decode()
    assert "<td>texts</td>" in listing and "<td>[40]</td>" in listing
