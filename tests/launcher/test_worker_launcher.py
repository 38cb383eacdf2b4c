"""`python -m launcher worker`: one Celery worker per GPU group, each with its own CUDA_VISIBLE_DEVICES and the queues
of its device shape. The GPUs are given as an operator gives them, through CUDA_VISIBLE_DEVICES (this machine has
none: the workers' own GPU probe then finds no device, but their devices and queues are the launcher's to set)."""
import json
import signal
import subprocess
import sys

import psutil
import pytest

from optimizers.configs import devices
from tests import processes
from tests.paths import REPO_ROOT
from tests.waiting import wait_until
from webapp.models import Worker


def _launcher(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launcher", "worker", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, env=processes.process_env() | (env or {}), **kwargs)


def test_the_plan_gives_each_worker_its_own_gpus_and_its_shapes_queues():
    plan = _launcher("--plan", "--gpus-per-worker", "2", "--host", "b1", env={"CUDA_VISIBLE_DEVICES": "0,1,2,3,4"})
    assert plan.returncode == 0, plan.stderr
    assert "GPUs 4 are left out: they make no group of 2" in plan.stderr
    workers = json.loads(plan.stdout)
    assert [(w["name"], w["devices"], w["env"]) for w in workers] == [
        ("gpu-x2-0@b1", ["0", "1"], {"CUDA_VISIBLE_DEVICES": "0,1"}),
        ("gpu-x2-1@b1", ["2", "3"], {"CUDA_VISIBLE_DEVICES": "2,3"}),
    ]
    shared = processes.process_env()["SLIMFORGE_DEFAULT_QUEUE"]
    assert all(w["queues"] == ["gpu-x2", devices.GPU_ANY, shared] and w["concurrency"] == 1 for w in workers)

    one_each = json.loads(_launcher("--plan", "--cpu-worker", "--concurrency", "2", "--no-shared-queue",
                                    env={"CUDA_VISIBLE_DEVICES": "GPU-8f3a,1"}).stdout)
    assert [(w["shape"], w["devices"], w["queues"], w["concurrency"]) for w in one_each] == [
        ("gpu", ["GPU-8f3a"], ["gpu", "gpu-any"], 1), ("gpu", ["1"], ["gpu", "gpu-any"], 1),
        ("cpu", [], ["cpu"], 2)]
    # A CPU worker hides every GPU from its jobs.
    assert one_each[-1]["env"] == {"CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.parametrize("gpus", [0, 1, 2, 3, 8])
def test_the_launcher_and_the_web_name_shapes_alike(gpus):
    from launcher.workers import shape_of

    assert shape_of(gpus) == devices.shape_of(gpus)
    assert devices.gpus_of(shape_of(gpus)) == gpus


@pytest.mark.parametrize("args, env, message", [
    (["--plan"], {"CUDA_VISIBLE_DEVICES": "0,0"}, "CUDA_VISIBLE_DEVICES lists a GPU twice"),
    (["--plan"], {"CUDA_VISIBLE_DEVICES": "0,$(reboot)"}, "which is no GPU index or UUID"),
    (["--plan", "--gpus-per-worker", "0"], {}, "--gpus-per-worker must be 1 to 64"),
    (["--plan", "--queues", "a b"], {}, "--queues lists 'a b'"),
    ([], {"DATABASE_URL": ""}, "set DATABASE_URL"),
])
def test_what_cannot_make_workers_is_refused_saying_why(args, env, message):
    result = _launcher(*args, env=env)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_the_workers_start_with_their_devices_beat_and_stop_with_the_launcher(transactional_db, process_logs):
    log = open(process_logs / "launcher-workers.log", "wb")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "launcher", "worker", "--gpus-per-worker", "2", "--no-shared-queue", "--host", "b2"],
        cwd=REPO_ROOT, env=processes.process_env() | {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    try:
        names = ["gpu-x2-0@b2", "gpu-x2-1@b2"]
        rows = wait_until(lambda: (found := list(Worker.objects.filter(name__in=names).order_by("name")))
                          and len(found) == 2 and found, timeout=90)
        assert [row.queues for row in rows] == [["gpu-any", "gpu-x2"]] * 2
        # Each Celery main process was started with its own GPUs, before anything in it could touch CUDA.
        seen = {}
        for child in psutil.Process(launcher.pid).children():
            command_line = child.cmdline()
            if "celery" in command_line:
                node = command_line[command_line.index("-n") + 1]
                seen[node] = child.environ().get("CUDA_VISIBLE_DEVICES")
        assert seen == {"gpu-x2-0@b2": "0,1", "gpu-x2-1@b2": "2,3"}
    finally:
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(60) == 0
        log.close()
    assert all(row.stopped_at for row in Worker.objects.filter(name__in=names))
    processes.wait_for_database_sessions_to_end()
