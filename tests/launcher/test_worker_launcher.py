"""`python -m launcher worker`: one Celery worker per GPU group, each with its own CUDA_VISIBLE_DEVICES and the queues
of its device shape. The GPUs are given as an operator gives them, through CUDA_VISIBLE_DEVICES (this machine has
none: the workers' own GPU probe then finds no device, but their devices and queues are the launcher's to set). The
workers it starts, their environments and their shutdown: tests/tasks/test_two_hosts.py."""
import json
import subprocess
import sys

import pytest

from optimizers.configs import devices
from tests import processes
from tests.paths import REPO_ROOT


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


def test_help_lists_the_options_and_exits_cleanly():
    result = _launcher("--help")
    assert result.returncode == 0 and "--gpus-per-worker N" in result.stdout and "--no-shared-queue" in result.stdout


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
    (["--plan", "--bogus"], {}, "unrecognized arguments: --bogus"),
    ([], {"DATABASE_URL": ""}, "set DATABASE_URL"),
])
def test_what_cannot_make_workers_is_refused_saying_why(args, env, message):
    result = _launcher(*args, env=env)
    assert result.returncode == 2 and message in result.stderr, result.stderr
