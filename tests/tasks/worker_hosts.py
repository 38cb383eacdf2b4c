"""Worker machines as `python -m launcher worker` starts them on hosts of their own: separate processes with separate
var folders, temporary folders and storage caches (and, given, processors of their own)."""
import signal
import subprocess
import sys

import psutil

from tests import processes
from tests.paths import REPO_ROOT


def start_host(name: str, folder, env: dict, log, cpus: str = "") -> subprocess.Popen:
    """A host's workers: the launcher with that host's own disk and devices (and only `cpus`, as taskset lists them,
    when given: a host's own processors)."""
    for sub in ("var", "tmp", "cache"):
        (folder / sub).mkdir(parents=True)
    pinned = ["taskset", "--cpu-list", cpus] if cpus else []
    return subprocess.Popen(
        [*pinned, sys.executable, "-m", "launcher", "worker", "--host", name], cwd=REPO_ROOT, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
        env=processes.process_env() | env | {"SLIMFORGE_VAR_DIR": str(folder / "var"), "TMPDIR": str(folder / "tmp"),
                                             "SLIMFORGE_WORKER_CACHE_DIR": str(folder / "cache")})


def celery_devices(host: subprocess.Popen) -> dict[str, str | None]:
    """The CUDA_VISIBLE_DEVICES of each Celery worker the host's launcher started, by node name."""
    seen = {}
    for child in psutil.Process(host.pid).children():
        command_line = child.cmdline()
        if "celery" in command_line:
            seen[command_line[command_line.index("-n") + 1]] = child.environ().get("CUDA_VISIBLE_DEVICES")
    return seen


def stop_host(host: subprocess.Popen) -> None:
    if host.poll() is None:
        host.send_signal(signal.SIGTERM)
        host.wait(60)
