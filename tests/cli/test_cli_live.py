"""The `slimforge` command driving a live server (a real Uvicorn and a real worker) through whole jobs: log in,
upload a model and a dataset, submit and follow, list, compare, download the bundle, cancel, a chain; and a follow
that survives the web server's restart in the middle of a job, resuming after the last event it saw."""
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from optimizers.formats.statedict import save_safetensors
from optimizers.zoo.models import build_model
from tests import processes
from tests.tasks.worker_jobs import CONFIG
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
SLIMFORGE = Path(sys.executable).parent / "slimforge"  # the console script `make venv` installs


def _cli(tmp_path, *args, check=True, timeout=600, popen=False):
    env = {**processes.process_env(), "SLIMFORGE_CONFIG": str(tmp_path / "cli.json"), "COLUMNS": "160"}
    env.pop("SLIMFORGE_URL", None)
    env.pop("SLIMFORGE_TOKEN", None)
    command = [str(SLIMFORGE), *args]
    if popen:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _logged_in(tmp_path, url):
    done = _cli(tmp_path, "login", url, "alice", "--password", "alice-secret-pw")
    assert "Logged in" in done.stdout
    assert (tmp_path / "cli.json").stat().st_mode & 0o077 == 0  # the token is readable by its owner alone


def _model_and_digits(tmp_path) -> tuple[int, int]:
    save_safetensors(build_model("mlp", json.loads(CONFIG)), tmp_path / "mlp.safetensors")
    done = _cli(tmp_path, "upload-model", str(tmp_path / "mlp.safetensors"), "--name", "mlp", "--input-shape",
                "1,64", "--architecture", "mlp", "--architecture-config", CONFIG)
    assert "ready safetensors" in done.stdout, done.stdout
    model_id = int(done.stdout.split("#", 1)[1].split()[0])
    done = _cli(tmp_path, "upload-dataset", "--kind", "digits", "--name", "digits")
    return model_id, int(done.stdout.split("#", 1)[1].split()[0])


def test_the_command_line_drives_a_whole_job(celery_worker, web_server, alice, tmp_path):
    assert "A worked example" in _cli(tmp_path, "--help").stdout
    refused = _cli(tmp_path, "list", check=False)
    assert refused.returncode != 0 and "Not logged in" in refused.stderr
    _logged_in(tmp_path, web_server)
    model_id, dataset_id = _model_and_digits(tmp_path)

    done = _cli(tmp_path, "submit", str(model_id), "quantize", "--set", "variant=dynamic_int8", "--follow")
    assert "succeeded" in done.stdout, done.stdout
    experiment_id = int(done.stdout.split("Experiment #", 1)[1].split()[0])

    bad = _cli(tmp_path, "submit", str(model_id), "quantize", "--set", "variant=int3", check=False)
    assert bad.returncode != 0 and "400" in bad.stderr and "config.variant" in bad.stderr
    nowhere = _cli(tmp_path, "submit", str(model_id), "quantize", "--run-on", "tpu", check=False)
    assert nowhere.returncode != 0 and "Unknown device 'tpu'" in nowhere.stderr

    listed = _cli(tmp_path, "list").stdout
    assert f"│ {experiment_id} " in listed and "quantize" in listed and "succeeded" in listed
    compared = _cli(tmp_path, "compare", str(experiment_id)).stdout
    assert "file size" in compared and str(experiment_id) in compared

    _cli(tmp_path, "bundle", str(experiment_id), "--out", str(tmp_path / "out"))
    with zipfile.ZipFile(tmp_path / "out" / f"slimforge-experiment-{experiment_id}.zip") as bundle:
        names = bundle.namelist()
    assert any(name.endswith("MODEL_CARD.md") for name in names) and any("report.html" in n for n in names)

    # Cancel a long fine-tune once it runs.
    long = _cli(tmp_path, "submit", str(model_id), "prune", "--dataset", str(dataset_id), "--config",
                json.dumps({"method": "unstructured", "agp_steps": 1, "epochs": 200, "early_stopping_patience": 0}))
    long_id = int(long.stdout.split("#", 1)[1].split()[0])
    cancelled = _cli(tmp_path, "cancel", str(long_id)).stdout
    assert f"Experiment #{long_id} is stopping at its next step" in cancelled or "is cancelled" in cancelled
    followed = _cli(tmp_path, "follow", str(long_id), check=False)
    assert followed.returncode == 1 and "cancelled" in followed.stdout, followed.stdout

    # Someone else's experiment reads like a missing one.
    assert "404" in _cli(tmp_path, "cancel", "999999", check=False).stderr


def test_a_chain_from_the_command_line(celery_worker, web_server, alice, tmp_path):
    _logged_in(tmp_path, web_server)
    model_id, dataset_id = _model_and_digits(tmp_path)
    done = _cli(tmp_path, "chain", str(model_id), "--dataset", str(dataset_id), "--step",
                'prune:{"method": "unstructured", "agp_steps": 1, "epochs": 1}', "--step",
                'distill:{"student": "thinner_copy", "epochs": 1, "compare_without_teacher": false}',
                "--step", "quantize", "--follow")
    assert "prune → distill → quantize" in done.stdout
    assert "Step 3: quantize" in done.stdout and "succeeded" in done.stdout, done.stdout
    assert "The first model against the final one" in done.stdout


@pytest.mark.faults
def test_follow_survives_a_web_server_restart(celery_worker, alice, alice_api, tmp_path, process_logs):
    port = processes.free_port()
    server, url = processes.start_web(process_logs / "cli-web-1.log", port=port)
    try:
        _logged_in(tmp_path, url)
        model_id, dataset_id = _model_and_digits(tmp_path)
        submitted = _cli(tmp_path, "submit", str(model_id), "prune", "--dataset", str(dataset_id), "--config",
                         json.dumps({"method": "unstructured", "agp_steps": 1, "epochs": 80,
                                     "early_stopping_patience": 0}))
        experiment_id = int(submitted.stdout.split("#", 1)[1].split()[0])
        follower = _cli(tmp_path, "follow", str(experiment_id), popen=True)
        # It follows the fine-tune for a while, then the web server goes away in the middle of the job.
        wait_until(lambda: alice_api.get(f"/api/experiments/{experiment_id}/").json()["last_seq"] > 30, timeout=120,
                   what="the job to be under way")
        processes.stop(server)
        time.sleep(2)
        server, _ = processes.start_web(process_logs / "cli-web-2.log", port=port)
        output, _ = follower.communicate(timeout=600)
    finally:
        processes.stop(server)
    assert follower.returncode == 0, output
    assert "connection lost" in output and "resuming after event" in output, output
    assert f"Experiment #{experiment_id}: succeeded" in output
    # Every epoch's line once: nothing missed in the gap, nothing shown twice after it.
    epochs = [line for line in output.splitlines() if line.startswith("fine-tune: epoch ")]
    assert [int(line.split()[2]) for line in epochs] == list(range(1, len(epochs) + 1)) and len(epochs) >= 2
