"""CPU % and RSS of a job: its process and every live descendant (DataLoader workers, compile workers...)."""
import contextlib
import os
import time

import psutil

MIB = 1024 * 1024
# Linux lists each thread's children in /proc: reading a few small files beats psutil's scan of every process
# on the machine (about 1 ms per hundred processes), which would be most of a tick on a busy host.
_PROC_CHILDREN = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


class ProcessTree:
    """CPU % comes from CPU seconds between two readings, so a child that starts and ends between ticks still
    counts (its parent has reaped it into children_user/children_system)."""

    def __init__(self):
        self._pid: int | None = None
        self._cpu_s = 0.0
        self._t = 0.0

    def read(self, process: psutil.Process) -> tuple[float, float]:
        """(CPU %, where 100 is one core busy; RSS MB). Raises psutil.Error when the process has ended."""
        if process.pid != self._pid:  # a new process: its CPU time counts from its start
            self._pid, self._cpu_s, self._t = process.pid, 0.0, process.create_time()
        now = time.time()
        cpu_s, rss = tree_usage(process)
        percent = max(0.0, cpu_s - self._cpu_s) / max(now - self._t, 1e-3) * 100
        self._cpu_s, self._t = cpu_s, now
        return percent, rss / MIB


def tree_usage(process: psutil.Process) -> tuple[float, int]:
    """CPU seconds and RSS bytes (shared pages count once per process) of a process and its live descendants."""
    cpu_s, rss = 0.0, 0
    for member in [process, *descendants(process)]:
        try:
            with member.oneshot():
                times, member_rss = member.cpu_times(), member.memory_info().rss
        except psutil.Error:
            if member is process:
                raise
            continue  # a descendant that just ended
        cpu_s += times.user + times.system + times.children_user + times.children_system
        rss += member_rss
    return cpu_s, rss


def descendants(process: psutil.Process) -> list[psutil.Process]:
    if not _PROC_CHILDREN:
        return process.children(recursive=True)
    found, queue = [], [process.pid]
    while queue:
        for pid in _child_pids(queue.pop()):
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(pid))
                queue.append(pid)
    return found


def _child_pids(pid: int) -> list[int]:
    pids = []
    with contextlib.suppress(OSError):  # the process just ended
        for thread in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{thread}/children") as listing:
                pids.extend(int(child) for child in listing.read().split())
    return pids
