"""Datasets imported by a real worker in the sandbox, and used by an experiment."""
import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _settled(api, url):
    body = api.get(url).json()
    return None if body["status"] == "pending" else body


def _finished(api, url):
    body = api.get(url).json()
    return None if body["status"] in ("queued", "running") else body


def test_digits_import_with_previews(celery_worker, alice_api):
    created = alice_api.post("/api/datasets/", {"name": "digits", "kind": "digits"}, format="json").json()
    dataset = wait_until(lambda: _settled(alice_api, f"/api/datasets/{created['id']}/"), timeout=90,
                         what="the digits import")
    assert dataset["status"] == "ready", dataset["error"]
    assert dataset["info"]["samples"] == 1797 and dataset["info"]["num_classes"] == 10
    assert dataset["info"]["sample_shape"] == [1, 8, 8]
    assert dataset["previews"]
    preview = alice_api.get(dataset["previews"][0])
    assert preview.status_code == 200 and b"".join(preview.streaming_content).startswith(b"\x89PNG")


def test_a_zip_slip_archive_is_refused_and_its_file_removed(celery_worker, alice_api):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../../evil/1.png", b"not really")
    upload = SimpleUploadedFile("images.zip", archive.getvalue())
    created = alice_api.post("/api/datasets/", {"name": "evil", "kind": "images", "file": upload},
                             format="multipart").json()
    dataset = wait_until(lambda: _settled(alice_api, f"/api/datasets/{created['id']}/"), timeout=90,
                         what="the import")
    assert dataset["status"] == "failed" and ".." in dataset["error"], dataset["error"]


def _text_dataset(api, name, content, **options):
    body = {"name": name, "kind": "text", "file": SimpleUploadedFile(name, content)}
    if options:
        body["options"] = json.dumps(options)
    response = api.post("/api/datasets/", body, format="multipart")
    assert response.status_code == 201, response.content
    return wait_until(lambda: _settled(api, f"/api/datasets/{response.json()['id']}/"), timeout=90,
                      what=f"the import of {name}")


def test_txt_jsonl_and_csv_texts_are_prepared_and_previewed(celery_worker, alice, alice_api, client):
    plain = _text_dataset(alice_api, "lines.txt", b"first <script>alert(1)</script>\n\nsecond line\nthird\n")
    assert plain["status"] == "ready", plain["error"]
    assert plain["info"]["samples"] == 3 and plain["info"]["dtype"] == "text" and plain["previews"] == []
    rows = [{"text": f"review number {i} " + "long " * (80 if i == 0 else 1), "label": ["neg", "pos"][i % 2]}
            for i in range(6)]
    jsonl = _text_dataset(alice_api, "reviews.jsonl", "".join(json.dumps(row) + "\n" for row in rows).encode(),
                          sequence_length=64)
    assert jsonl["status"] == "ready", jsonl["error"]
    assert (jsonl["info"]["classes"], jsonl["info"]["class_counts"]) == (["neg", "pos"], [3, 3])
    assert jsonl["info"]["sequence_length"] == 64 and jsonl["options"]["format"] == "jsonl"
    table = _text_dataset(alice_api, "tweets.csv", b"id,body\n1,hello world\n2,\"quoted, with a comma\"\n",
                          text_column="body")
    assert table["status"] == "ready", table["error"]
    assert [sample["text"] for sample in table["info"]["preview_texts"]] == ["hello world", "quoted, with a comma"]
    client.force_login(alice)
    page = client.get(f"/datasets/{plain['id']}/").content.decode()
    assert "first &lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "txt · " in page and "128 tokens a text" in page
    page = client.get(f"/datasets/{jsonl['id']}/").content.decode()
    assert "review number 0 long" in page and "…" in page and "· neg" in page


@pytest.mark.parametrize(("name", "content", "options", "problem"), [
    ("huge.txt", b"x" * (10 * 1024 * 1024), {}, "line 1 is longer than 100,000 characters, the limit for one text"),
    ("late-binary.txt", b"fine text\n" * 7000 + b"\x00\x01\x02\x03" * 100, {}, "line 7001 holds a NUL character"),
    ("table.csv", b"title,label\nhello,1\nworld,0\n", {}, "the CSV has no column named 'text'; its columns: title"),
    ("rows.jsonl", b'{"text": "ok"}\n{"text": "fine"}\n{"text": broken}\n', {}, "line 3 is not valid JSON"),
])
def test_bad_text_files_fail_their_import_with_the_reason(celery_worker, alice_api, name, content, options, problem):
    dataset = _text_dataset(alice_api, name, content, **options)
    assert dataset["status"] == "failed" and problem in dataset["error"], dataset["error"]


def test_a_bert_folder_is_quantized_on_a_text_dataset_tokenized_by_its_own_tokenizer(celery_worker, alice_api,
                                                                                     tmp_path):
    pytest.importorskip("transformers")
    from tests.hf_folders import bert_folder, zip_folder

    bert_folder(tmp_path / "bert", classes=2)
    upload = SimpleUploadedFile("bert.zip", zip_folder(tmp_path / "bert", tmp_path / "bert.zip").read_bytes())
    response = alice_api.post("/api/models/", {"file": upload, "name": "bert", "input_shape": "1,8",
                                               "input_dtype": "int64"}, format="multipart")
    model = wait_until(lambda: _settled(alice_api, f"/api/models/{response.json()['id']}/"), timeout=120,
                       what="the inspection")
    assert model["status"] == "ready", model["error"]
    texts = "".join(f"{text},{label}\n" for text, label in [("the small model", 1), ("a b c", 0)] * 10)
    dataset = _text_dataset(alice_api, "texts.csv", f"text,label\n{texts}".encode(), sequence_length=16)
    response = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize",
                                                    "dataset": dataset["id"], "config": {"variant": "fp16"}},
                              format="json")
    assert response.status_code == 201, response.content
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _finished(alice_api, url), timeout=240, what="quantize")
    assert experiment["status"] == "succeeded", experiment["error"]
    summary = experiment["summary"]
    assert summary["after"]["evaluated_on"] == "val split" and summary["after"]["output_error"]["samples"] == 4
    assert summary["data"]["tokenized"]["rows"] == 20 and summary["data"]["sample_shape"] == [16]
