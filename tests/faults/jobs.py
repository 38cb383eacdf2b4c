"""What the fault tests run on their own stack, through its HTTP API as any client would."""
import json
from pathlib import Path

from optimizers.formats.statedict import save_safetensors
from optimizers.zoo.models import build_model
from tests.tasks.worker_jobs import CONFIG
from tests.waiting import wait_until

PENDING = ("queued", "running")


def get(api, url: str) -> dict:
    response = api.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def model_and_digits(api, base: str, folder: Path) -> tuple[dict, dict]:
    path = folder / "mlp.safetensors"
    save_safetensors(build_model("mlp", json.loads(CONFIG)), path)
    with open(path, "rb") as handle:
        created = api.post(f"{base}/api/models/", files={"file": ("mlp", handle)}, timeout=30, data={
            "name": "mlp", "architecture": "mlp", "architecture_config": CONFIG, "input_shape": "1,64"})
    assert created.status_code == 201, created.text
    digits = api.post(f"{base}/api/datasets/", json={"name": "digits", "kind": "digits"}, timeout=30)
    assert digits.status_code == 201, digits.text
    model = wait_until(lambda: _settled(api, f"{base}/api/models/{created.json()['id']}/", ("pending",)),
                       timeout=120, what="the inspection")
    dataset = wait_until(lambda: _settled(api, f"{base}/api/datasets/{digits.json()['id']}/", ("pending",)),
                         timeout=120, what="the digits")
    assert model["status"] == "ready" and dataset["status"] == "ready", (model, dataset)
    return model, dataset


def _settled(api, url, pending):
    body = get(api, url)
    return None if body["status"] in pending else body


def finished(api, url: str, timeout: float = 300) -> dict:
    return wait_until(lambda: _settled(api, url, PENDING), timeout=timeout, what=f"{url} to finish")
