"""Whether this process can still fork replicas that train.

PyTorch's autograd refuses to run in a child forked after the parent's autograd started its per-device threads
("Unable to handle autograd's threading in combination with fork-based multiprocessing"). The parent starts them at
its first backward whenever the build sees a device other than the CPU: on a GPU machine, any backward before the
fork (an importance score, a teacher's check, an earlier fine-tuning) makes forked CPU ranks fail. Which builds and
which calls register such a device is torch's business and changes between releases, so this asks autograd itself:
a forked child runs one tiny backward and says whether it could.
"""
import os
import signal
import time

import torch

PROBE_TIMEOUT_S = 10.0

_refused = False  # once autograd's device threads run here, they run until the process ends: no need to ask again


def fork_keeps_autograd() -> bool:
    """Whether a child forked now can run backward; forks one child (a few milliseconds) until the answer is no."""
    global _refused
    if _refused:
        return False
    pid = os.fork()
    if pid == 0:  # the child: no cleanup of the parent's state, only the answer in its exit code
        code = 1
        try:
            torch.ones(1, requires_grad=True).sum().backward()
            code = 0
        finally:
            os._exit(code)
    _refused = _exit_code(pid) != 0
    return not _refused


def _exit_code(pid: int) -> int | None:
    """The child's exit code; None for one that did not answer within PROBE_TIMEOUT_S (a lock another thread held at
    the fork: such a fork is not to be trusted either), which is then killed."""
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None
