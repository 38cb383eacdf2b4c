"""Jobs the worker tests submit through the API: an untrained MLP state dict, the digits, a fine-tuning prune."""
import json

from django.core.files.uploadedfile import SimpleUploadedFile

from optimizers.formats.statedict import save_safetensors
from optimizers.zoo.models import build_model
from tests.waiting import wait_until

CONFIG = '{"hidden": [256, 128]}'


def settled(api, url, pending):
    body = api.get(url).json()
    return None if body["status"] in pending else body


def model_and_digits(api, tmp_path, architecture: str = "mlp", config: str = CONFIG,
                     input_shape: str = "1,64") -> tuple[dict, dict]:
    save_safetensors(build_model(architecture, json.loads(config)), tmp_path / "model.safetensors")
    created = api.post("/api/models/", {
        "file": SimpleUploadedFile("model", (tmp_path / "model.safetensors").read_bytes()), "name": architecture,
        "architecture": architecture, "architecture_config": config, "input_shape": input_shape},
        format="multipart").json()
    dataset = api.post("/api/datasets/", {"name": "digits", "kind": "digits"}, format="json").json()
    model = wait_until(lambda: settled(api, f"/api/models/{created['id']}/", ("pending",)), timeout=120,
                       what="the inspection")
    digits = wait_until(lambda: settled(api, f"/api/datasets/{dataset['id']}/", ("pending",)), timeout=90,
                        what="the digits")
    assert model["status"] == "ready" and digits["status"] == "ready"
    return model, digits


def submit_prune(api, model, dataset, **config) -> str:
    response = api.post("/api/experiments/", {"model": model["id"], "recipe": "prune", "dataset": dataset["id"],
                                              "config": {"method": "unstructured", "agp_steps": 1, **config}},
                        format="json")
    assert response.status_code == 201, response.json()
    return f"/api/experiments/{response.json()['id']}/"
