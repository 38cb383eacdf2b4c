"""Other formats through the real worker: safetensors with an architecture, ONNX, and a hostile pickle."""
import io
import os
import pickle

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile

from optimizers.statedict import save_safetensors
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


def test_an_onnx_model_is_measured_but_not_optimized(celery_worker, alice_api, tmp_path):
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    torch.onnx.export(network, (torch.randn(1, 16),), str(tmp_path / "m.onnx"), dynamo=True, external_data=False)
    model = _upload(alice_api, "onnx", (tmp_path / "m.onnx").read_bytes(), input_shape="1,16")
    assert model["status"] == "ready" and model["format"] == "onnx", model["error"]
    assert model["params"] == 16 * 32 + 32 + 32 * 4 + 4
    assert model["info"]["recipes"]["quantize"]["applicable"] is False
    response = alice_api.post("/api/experiments/", {"model": model["id"], "recipe": "quantize"}, format="json")
    assert response.status_code == 400 and "ONNX" in " ".join(response.json()["recipe"])


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
