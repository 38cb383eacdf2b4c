"""Other formats through the real worker: safetensors with an architecture, ONNX, and a hostile pickle."""
import io
import os
import pickle

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile

from optimizers.formats.statedict import save_safetensors
from optimizers.zoo.models import build_model
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _settled(api, url, pending=("pending",)):
    body = api.get(url).json()
    return None if body["status"] in pending else body


def _upload(api, name, content, **fields):
    response = api.post("/api/models/", {"file": SimpleUploadedFile(name, content), "name": name, **fields},
                        format="multipart")
    assert response.status_code == 201, response.content
    return wait_until(lambda: _settled(api, f"/api/models/{response.json()['id']}/"), timeout=120,
                      what="the inspection")


def test_a_safetensors_state_dict_of_a_zoo_cnn_is_inspected_and_quantized(celery_worker, alice_api, tmp_path):
    torch.manual_seed(0)
    save_safetensors(build_model("small_cnn", {}), tmp_path / "cnn.safetensors")
    model = _upload(alice_api, "cnn", (tmp_path / "cnn.safetensors").read_bytes(), architecture="small_cnn",
                    architecture_config="{}")
    assert model["status"] == "ready" and model["format"] == "safetensors", model["error"]
    assert model["info"]["output_shape"] == [1, 10] and model["info"]["report"]["macs"] > 0
    response = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize"}, format="json")
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=180, what="quantize")
    assert experiment["status"] == "succeeded", experiment["error"]
    assert {a["name"] for a in experiment["artifacts"]} >= {"model.pt", "report.json"}
    assert experiment["summary"]["formats"]["skipped"]  # the reasons for formats it could not produce


def test_an_onnx_model_is_measured_and_quantized_by_onnxruntime(celery_worker, alice_api, tmp_path):
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    torch.onnx.export(network, (torch.randn(1, 16),), str(tmp_path / "m.onnx"), dynamo=True, external_data=False)
    model = _upload(alice_api, "onnx", (tmp_path / "m.onnx").read_bytes(), input_shape="1,16")
    assert model["status"] == "ready" and model["format"] == "onnx", model["error"]
    assert model["params"] == 16 * 32 + 32 + 32 * 4 + 4
    assert model["info"]["recipes"]["prune"]["applicable"] is False
    response = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize"}, format="json")
    assert response.status_code == 400 and "onnx_dynamic_int8" in " ".join(response.json()["config.variant"])
    response = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize",
                                                    "config": {"variant": "onnx_dynamic_int8"}}, format="json")
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=180, what="quantize")
    assert experiment["status"] == "succeeded", experiment["error"]
    onnx = next(a for a in experiment["artifacts"] if a["name"] == "model.onnx")
    assert onnx["size_bytes"] < (tmp_path / "m.onnx").stat().st_size


class _Trap:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_would_run_code_never_runs(celery_worker, alice_api, tmp_path):
    marker = tmp_path / "pwned"
    checkpoint = io.BytesIO()
    torch.save({"weights": _Trap(str(marker))}, checkpoint)  # a zip with data.pkl: passes the upload's sniff
    model = _upload(alice_api, "trap", checkpoint.getvalue(), input_shape="1,4")
    assert model["status"] == "failed" and "never unpickles" in model["error"], model["error"]
    raw = alice_api.post("/api/models/", {"file": SimpleUploadedFile("trap.pt", pickle.dumps(_Trap(str(marker)))),
                                          "name": "raw", "input_shape": "1,4"}, format="multipart")
    assert raw.status_code == 400 and "pickle" in " ".join(raw.json()["file"])
    assert not os.path.exists(marker)


def test_prune_a_state_dict_model_on_digits_with_fine_tuning(celery_worker, alice_api, tmp_path):
    torch.manual_seed(0)
    save_safetensors(build_model("small_cnn", {}), tmp_path / "cnn.safetensors")
    model = _upload(alice_api, "cnn", (tmp_path / "cnn.safetensors").read_bytes(), architecture="small_cnn",
                    architecture_config="{}")
    assert model["info"]["recipes"]["prune"]["variants"]["unstructured"]["applicable"], model["info"]["recipes"]
    created = alice_api.post("/api/datasets/", {"name": "digits", "kind": "digits"}, format="json").json()
    wait_until(lambda: _settled(alice_api, f"/api/datasets/{created['id']}/"), timeout=90, what="digits")
    response = alice_api.post("/api/experiments/", {
        "model": model["id"], "recipe": "prune", "dataset": created["id"],
        "config": {"method": "unstructured", "target_sparsity": 0.8, "agp_steps": 2, "epochs_per_step": 1,
                   "epochs": 1}}, format="json")
    assert response.status_code == 201, response.json()
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=240, what="prune")
    assert experiment["status"] == "succeeded", experiment["error"]
    summary = experiment["summary"]
    # 80% of the Conv and Linear weights are zero; biases and batch-norm parameters are not pruned
    assert summary["after"]["nonzero_params"] < 0.45 * summary["before"]["nonzero_params"]
    assert "model.sparse.zip" in {a["name"] for a in experiment["artifacts"]}
    events = alice_api.get(url + "events/").json()
    assert any(e["kind"] == "metric" and e["name"].startswith("fine-tune/") for e in events)


def test_a_hugging_face_folder_is_inspected_in_the_sandbox_and_quantized(celery_worker, alice, alice_api, client,
                                                                        tmp_path):
    transformers = pytest.importorskip("transformers")
    import zipfile

    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in (tmp_path / "bert").iterdir():
            archive.write(file, f"bert/{file.name}")
    model = _upload(alice_api, "bert.zip", buffer.getvalue(), input_shape="1,8", input_dtype="int64")
    assert model["status"] == "ready" and model["format"] == "hf", model["error"]
    assert model["info"]["hf"]["family"] == "bert" and model["info"]["output_shape"] == [1, 8, 32]
    client.force_login(alice)
    page = client.get(f"/models/{model['id']}/").content.decode()
    assert "Hugging Face folder" in page and "bert · BertModel" in page and "2 · 32 · 100 tokens" in page
    response = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize"}, format="json")
    assert response.status_code == 201, response.content
    url = f"/api/experiments/{response.json()['id']}/"
    experiment = wait_until(lambda: _settled(alice_api, url, ("queued", "running")), timeout=180, what="quantize")
    assert experiment["status"] == "succeeded", experiment["error"]
    # dynamic_int8 on a transformers model: exported to ONNX, fused and quantized by onnxruntime
    assert experiment["summary"]["primary_format"] == "onnx"
    assert "model.onnx" in {a["name"] for a in experiment["artifacts"]}
