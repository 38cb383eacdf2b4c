"""PostgreSQL restarted in the middle of a job, with real processes: an embedded PostgreSQL of the test's own
(launcher.postgres), a web server and a worker on it. The worker retries briefly through the outage; the job goes on in
its sandbox meanwhile, its events wait and are written once the database is back, and the experiment ends as it
should: succeeded, on its first attempt, with every event in order."""
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from launcher.postgres import start_postgres
from tests import processes
from tests.faults.jobs import model_and_digits
from tests.faults.stack import RedisServer
from tests.waiting import wait_until

pytestmark = pytest.mark.faults
CREATE_USER = """
from django.contrib.auth import get_user_model
from knox.models import AuthToken
user = get_user_model().objects.create_user("dora", password="dora-secret-pw")
print("TOKEN", AuthToken.objects.create(user)[1])
"""


@pytest.fixture
def own_database():
    # Not pytest's tmp_path: as root, PostgreSQL runs as another user, who must be able to reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="slimforge-pg-fault-"))
    server = start_postgres(folder)
    try:
        yield folder, server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=processes.REPO_ROOT, capture_output=True,
                          text=True, env=processes.process_env() | env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _answer(api, url: str) -> dict | None:
    """The API's answer, or None while the web server's database connection is broken (a 500) or down."""
    try:
        response = api.get(url, timeout=10)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def test_a_job_lives_through_a_postgres_restart(own_database, tmp_path):
    folder, server = own_database
    own_redis = RedisServer(tmp_path / "redis")
    name = f"pg-fault-{processes.free_port()}"
    env = {"DATABASE_URL": server.url, "REDIS_URL": own_redis.url, "SLIMFORGE_REDIS_PREFIX": name,
           "SLIMFORGE_DEFAULT_QUEUE": name}
    _manage(env, "migrate", "--noinput")
    token = _manage(env, "shell", "-c", CREATE_USER).split("TOKEN", 1)[1].strip()
    own_redis.start()
    started = []
    try:
        started.append(processes.start_worker(tmp_path / "worker.log", queue=name, env=env))
        web, url = processes.start_web(tmp_path / "web.log", env=env)
        started.append(web)
        api = requests.Session()
        api.headers["Authorization"] = f"Token {token}"
        model, digits = model_and_digits(api, url, tmp_path)
        response = api.post(f"{url}/api/experiments/", timeout=30, json={
            "model": model["id"], "recipe": "prune", "dataset": digits["id"],
            "config": {"method": "unstructured", "agp_steps": 1, "epochs": 60, "early_stopping_patience": 0}})
        assert response.status_code == 201, response.text
        experiment = f"{url}/api/experiments/{response.json()['id']}/"
        wait_until(lambda: (_answer(api, experiment) or {}).get("last_seq", 0) > 20, timeout=120,
                   what="the job to be under way")

        server.stop()  # every connection of the web server and the worker is cut
        time.sleep(3)
        server = start_postgres(folder)

        done = wait_until(lambda: (lambda body: body if body and body["status"] not in ("queued", "running")
                                   else None)(_answer(api, experiment)), timeout=300, what="the job to end")
        assert done["status"] == "succeeded", done["error"]
        assert done["attempt"] == 1  # not taken for lost and run again
        seqs = [event["seq"] for event in api.get(experiment + "events/", timeout=30).json()]
        assert seqs == list(range(1, done["last_seq"] + 1))  # every event, once, in order
        assert "the database is unreachable" in (tmp_path / "worker.log").read_text()  # it did meet the outage
    finally:
        for process in reversed(started):
            processes.stop(process)
        own_redis.stop()
        server.stop()
