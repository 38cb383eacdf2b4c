"""`make run`'s launcher as a new user meets it: embedded servers, admin login, a quantize job, clean stop."""
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.modelfiles import linear_torchscript_bytes
from tests.paths import REPO_ROOT as ROOT
from tests.processes import free_port
from tests.waiting import wait_until

PASSWORD = "first-start-password"


@pytest.fixture
def slimforge_run():
    # Not pytest's tmp_path: as root, the servers run as another user, who must be able to reach the folder.
    var_dir = Path(tempfile.mkdtemp(prefix="slimforge-run-"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SLIMFORGE_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SLIMFORGE_VAR_DIR=str(var_dir), PORT=str(free_port()), SLIMFORGE_ADMIN_PASSWORD=PASSWORD)
    launcher = subprocess.Popen([sys.executable, "-m", "launcher", "run"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in launcher.stdout], daemon=True).start()
    yield launcher, f"http://127.0.0.1:{env['PORT']}", var_dir, lines
    if launcher.poll() is None:
        launcher.kill()
    shutil.rmtree(var_dir, ignore_errors=True)


def _printed(lines: queue.Queue) -> str:
    text = []
    while not lines.empty():
        text.append(lines.get())
    return "".join(text)


def test_run_serves_logs_in_quantizes_and_stops_cleanly(slimforge_run):
    launcher, url, var_dir, lines = slimforge_run
    wait_until(lambda: _answers(url), timeout=120, what="the login page of `launcher run`")
    # The banner follows within one turn of the launcher's watch loop (0.5 s) after the web server first answers.
    output = []
    wait_until(lambda: output.append(_printed(lines)) or (url in "".join(output) and "admin" in "".join(output)),
               timeout=10, what=f"the banner with {url} and the admin user")

    token = requests.post(f"{url}/api/auth/token/", json={"username": "admin", "password": PASSWORD}).json()
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token['token']}"
    created = api.post(f"{url}/api/models/", data={"name": "mlp", "input_shape": "1,64"},
                       files={"file": ("mlp.pt", linear_torchscript_bytes())}).json()
    model = wait_until(lambda: _settled(api, f"{url}/api/models/{created['id']}/", ("pending",)), timeout=90,
                       what="the inspection")
    assert model["status"] == "ready", model
    experiment = api.post(f"{url}/api/experiments/", json={"model": model["id"], "recipe": "quantize"}).json()
    finished = wait_until(lambda: _settled(api, f"{url}/api/experiments/{experiment['id']}/", ("queued", "running")),
                          timeout=120, what="the quantize job")
    assert finished["status"] == "succeeded", finished["error"]

    family = [launcher.pid] + [child.pid for child in psutil.Process(launcher.pid).children(recursive=True)]
    assert len(family) >= 5  # launcher, postgres, redis, uvicorn, celery (and their own children)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(60) == 0
    time.sleep(0.5)
    left = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert left == [], f"processes left behind: {left}"
    assert (var_dir / "media").exists()


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/accounts/login/", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _settled(api, url: str, pending: tuple):
    body = api.get(url).json()
    return None if body["status"] in pending else body
