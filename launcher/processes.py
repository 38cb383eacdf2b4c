"""Child processes that die with the launcher: spawned in their own process groups, stopped in order, and
killed with their stragglers when they will not stop. Standard library only: no Django.
"""
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESERVED_PORTS = {5432, 6379}  # the usual system servers' ports: never take them


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


def spawn(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
          log_path: Path | None = None, ids: tuple[int, int] | None = None, own_group: bool = True,
          death_signal: int = signal.SIGTERM) -> subprocess.Popen:
    """Start a child that dies with us. In its own process group, a Ctrl-C on the terminal reaches only
    the launcher, which then stops the children in order."""
    kwargs = {"env": env, "cwd": cwd, "stdin": subprocess.DEVNULL,
              "preexec_fn": _die_with_parent(death_signal)}
    if own_group:
        kwargs["process_group"] = 0
    if ids:
        kwargs.update(user=ids[0], group=ids[1], extra_groups=[])
    if log_path is None:
        return subprocess.Popen(argv, **kwargs)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **kwargs)


def stop_processes(processes: list[tuple[subprocess.Popen, int]], *, timeout: float = 20.0) -> None:
    """Signal all, wait for all until one deadline, then kill the process groups of those still running."""
    for process, sig in processes:
        if process.poll() is None:
            _signal_quietly(process.pid, sig)
    deadline = time.monotonic() + timeout
    for process, _ in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_quietly(process.pid, signal.SIGKILL, group=True)
            process.wait()
            warn(f"{Path(process.args[0]).name} (pid {process.pid}) did not stop in {timeout:.0f} s; killed")
        _kill_stragglers(process.pid)


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()

    def preexec() -> None:  # runs in the child after the user switch, which would clear the setting
        prctl(1, int(sig))  # PR_SET_PDEATHSIG: the kernel signals us when the spawning thread ends
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def warn(message: str) -> None:
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass  # a closed terminal or pipe must not stop the shutdown


def _signal_quietly(pid: int, sig: int, *, group: bool = False) -> None:
    try:
        (os.killpg if group else os.kill)(pid, sig)
    except ProcessLookupError:
        pass


def _kill_stragglers(pgid: int, grace: float = 5.0) -> None:
    """Children of a child (a postgres backend, a Celery pool process) that outlived their parent."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)
    _signal_quietly(pgid, signal.SIGKILL, group=True)
