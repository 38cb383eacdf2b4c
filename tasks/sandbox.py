"""The parent side of the sandbox: a throwaway subprocess, with limits, is the only place a model is loaded.

The child (optimizers.job_child) writes JSON lines on its stdout; this side reads them without blocking,
hands the child's process to a sampler every interval, and turns its death, time-out or error into SandboxError.
"""
import json
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from optimizers.events import ERROR_LINE, RESULT_LINE, Event
from optimizers.job_spec import JobSpec
from tasks import isolation

REPO_ROOT = Path(__file__).resolve().parent.parent
# The pump wakes at least this often, so an event waiting in the bridge's batch is flushed within about this long.
PUMP_WAKE_S = 0.05
MAX_EVENT_LINE = 16 * 2**20  # the final result line holds the whole report: generous, and still bounded
STDERR_DRAIN_S = 2.0


class SandboxError(Exception):
    """The model could not be processed; the message is meant for the model's owner."""


class JobCancelled(SandboxError):
    """The job stopped because its owner cancelled it: at a step boundary, or hard after the grace period."""


@dataclass
class Cancel:
    """How run_sandboxed learns that a job is cancelled: `requested()` is polled (it may query the database; it is
    called at most every `poll_s`). The child is then asked to stop at its next step (SIGUSR1, which
    optimizers.job_child turns into a flag its steps check) and killed if it has not ended `grace_s` later."""

    requested: Callable[[], bool]
    grace_s: float = 10.0
    poll_s: float = 1.0
    # The soft time limit: this many seconds after the start the job is asked to stop at its next step, as if
    # cancelled (`timed_out` then tells the two apart); the sandbox's wall limit stays the hard one.
    soft_limit_s: float | None = None
    asked_at: float | None = None
    timed_out: bool = False
    _next_poll: float = 0.0
    _started: float = field(default_factory=time.monotonic)

    def check(self, process: subprocess.Popen) -> None:
        now = time.monotonic()
        if self.asked_at is None and self.soft_limit_s is not None and now - self._started >= self.soft_limit_s:
            self.asked_at, self.timed_out = now, True
            _ask_to_stop(process)
            return
        if self.asked_at is not None:
            if not self.timed_out and now - self.asked_at > self.grace_s:
                raise JobCancelled(f"The job was cancelled; it did not stop at a step boundary within "
                                   f"{self.grace_s:.0f} s and was stopped hard.")
            return
        if now < self._next_poll:
            return
        self._next_poll = now + self.poll_s
        if self.requested():
            self.asked_at = now
            _ask_to_stop(process)


def _ask_to_stop(process: subprocess.Popen) -> None:
    """SIGUSR1 to the job's Python processes, inside the sandbox or not; never to bubblewrap (it would die of it)."""
    try:
        root = psutil.Process(process.pid)
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for member in members:
        try:
            command = member.cmdline()
            if command and Path(command[0]).name != "bwrap" and "optimizers.job_child" in command:
                member.send_signal(signal.SIGUSR1)
        except psutil.Error:
            pass


@dataclass(frozen=True)
class Limits:
    wall_seconds: float
    memory_mb: int
    threads: int = 1
    file_mb: int = 4096  # the largest file the job may write (the saved model in every format, checkpoints)
    open_files: int = 1024
    processes: int = 512  # threads count too: torch's pools, DDP ranks and their threads


class BoundedLog:
    """What a job wrote on stderr, in bounded memory: the first and the last KEEP bytes, and how many between were
    dropped (a model can print without end)."""

    KEEP = 64 * 1024

    def __init__(self) -> None:
        self.head, self.tail, self.dropped = b"", b"", 0

    def add(self, chunk: bytes) -> None:
        room = self.KEEP - len(self.head)
        self.head, chunk = self.head + chunk[:room], chunk[room:]
        self.tail += chunk
        if len(self.tail) > self.KEEP:
            self.dropped += len(self.tail) - self.KEEP
            self.tail = self.tail[-self.KEEP:]

    def text(self) -> str:
        gap = f"\n[... {self.dropped:,} bytes dropped ...]\n" if self.dropped else ""
        return (self.head + gap.encode() + self.tail).decode(errors="replace")


@dataclass
class _Child:
    process: subprocess.Popen
    buffer: bytes = b""
    outcome: dict | None = None
    stderr: BoundedLog = field(default_factory=BoundedLog)


def _child_env(limits: Limits) -> dict:
    # A small, explicit environment: no proxies, no credentials, no Django settings.
    # The worker's GPUs are the job's GPUs: CUDA_VISIBLE_DEVICES passes through (telemetry samples the same ones).
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
            "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1", SLIMFORGE_TORCH_THREADS=str(limits.threads),
               OMP_NUM_THREADS=str(limits.threads))
    return env


def _apply_limits(limits: Limits) -> Callable[[], None]:
    def apply():
        size = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
        # CPU seconds as a second line behind the wall clock: all threads busy for the whole allowed time.
        cpu_seconds = int(limits.wall_seconds * max(1, limits.threads)) + 5
        # The soft limit sends SIGXCPU (reported as such); the hard one, a little later, SIGKILL.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * 1024 * 1024,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        if os.geteuid() == 0:
            # Counted per user, so only where the job runs as the sandbox's own user (a root worker drops to it):
            # a worker run by a person would count that person's other processes too.
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes,) * 2)
    return apply


def start_sandboxed(argv: list[str], *, workdir: str, writable: list[str], limits: Limits, stdout, stderr,
                    network: bool = False) -> tuple[subprocess.Popen, "isolation.Command"]:
    """Start `argv` in the operating-system sandbox with the resource limits, a minimal environment and a session of
    its own; it sees `workdir` (read-only) and `writable`, and the host's network only with `network` (a multi-host
    job's). Every job starts here (and the red-team tests)."""
    try:
        sandboxed = isolation.command(argv, readable=[workdir], writable=writable, workdir=workdir, network=network)
    except isolation.Unsandboxed as refusal:
        raise SandboxError(str(refusal)) from None
    try:
        process = subprocess.Popen(sandboxed.argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                   cwd=workdir, env=_child_env(limits), preexec_fn=_apply_limits(limits),
                                   start_new_session=True, pass_fds=sandboxed.pass_fds)
    finally:
        sandboxed.close()
    return process, sandboxed


def run_sandboxed(spec: JobSpec, *, limits: Limits, on_event: Callable[[Event], None],
                  on_sample: Callable[[psutil.Process], None] | None = None,
                  sample_interval: float = 1.0, on_tick: Callable[[], None] | None = None,
                  cancel: Cancel | None = None) -> dict:
    """Run one action in a fresh process and return its result; events arrive through `on_event`, and
    `on_sample` gets the child's psutil.Process every `sample_interval` seconds (it may read its children too).
    With `cancel`, a cancelled job raises JobCancelled."""
    with tempfile.TemporaryDirectory(prefix="slimforge-spec-") as folder:
        spec_path = Path(folder) / "spec.json"
        spec_path.write_text(json.dumps(spec.to_dict()))
        process, sandboxed = start_sandboxed(
            [sys.executable, "-m", "optimizers.job_child", str(spec_path)], workdir=folder,
            writable=_job_folders(spec), limits=limits, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            network=spec.hosts is not None)  # a job on several hosts: its replicas must reach the others
        child = _Child(process)
        try:
            _pump(child, limits, on_event, on_sample, sample_interval, on_tick, cancel)
        finally:
            _kill_group(process)
        code = sandboxed.signal_of(child.process.returncode)
        if code != 0 and _disk_full(_job_folders(spec)):
            raise SandboxError(DISK_FULL)  # whatever the child died of, a full disk is what to fix
        return _outcome(child, code, limits, child.stderr.text())


DISK_FULL_BYTES = 1 << 20
DISK_FULL = ("No space left on device: the worker's disk filled up while the job wrote its files; they were "
             "removed. Free space in the worker's temporary folder (TMPDIR), then run it again.")


def _disk_full(folders: list[str]) -> bool:
    for folder in folders:
        try:
            if shutil.disk_usage(folder).free < DISK_FULL_BYTES:
                return True
        except OSError:
            continue
    return False


def _job_folders(spec: JobSpec) -> list[str]:
    """What the job may write: its output and checkpoint folders, and the folders its inputs were copied into (the
    worker copies each job's inputs into a folder of the job's own; tools such as onnxruntime write beside them)."""
    folders = [*spec.folders_written(), *(str(Path(path).parent) for path in spec.files_read())]
    return sorted(set(folders))


def _pump(child, limits, on_event, on_sample, sample_interval, on_tick, cancel):
    deadline = time.monotonic() + limits.wall_seconds
    probe = psutil.Process(child.process.pid)
    next_sample = time.monotonic() + sample_interval
    with selectors.DefaultSelector() as selector:
        selector.register(child.process.stdout, selectors.EVENT_READ, "events")
        selector.register(child.process.stderr, selectors.EVENT_READ, "stderr")
        open_stream = True
        while open_stream:
            now = time.monotonic()
            if now > deadline:
                raise SandboxError(f"The job took longer than its limit of {limits.wall_seconds:.0f} s "
                                   "and was stopped.")
            for key, _ in selector.select(timeout=max(0.0, min(PUMP_WAKE_S, next_sample - now))):
                if key.data == "events":
                    open_stream = _read_lines(child, on_event)
                elif not _read_stderr(child):
                    selector.unregister(child.process.stderr)
            if on_sample and time.monotonic() >= next_sample:
                # Late (a slow flush)? The next sample is one interval away, not a burst to catch up.
                next_sample = max(next_sample + sample_interval, time.monotonic() + sample_interval / 2)
                _sample(probe, on_sample)
            if on_tick:
                on_tick()
            if cancel:
                cancel.check(child.process)
        _drain_stderr(child, selector)
    try:
        child.process.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise SandboxError("The model process closed its output but did not exit, and was stopped.") from None


def _read_stderr(child: _Child) -> bool:
    chunk = os.read(child.process.stderr.fileno(), 65536)
    child.stderr.add(chunk)
    return bool(chunk)


def _drain_stderr(child: _Child, selector) -> None:
    """After the events end: what is left on stderr (its last lines say why a job failed), for a moment at most."""
    selector.unregister(child.process.stdout)  # at its end: always "readable", it would spin the loop below
    if child.process.stderr not in {key.fileobj for key in selector.get_map().values()}:
        return
    until = time.monotonic() + STDERR_DRAIN_S
    while time.monotonic() < until and selector.select(timeout=max(0.0, until - time.monotonic())):
        if not _read_stderr(child):
            return


def _read_lines(child: _Child, on_event) -> bool:
    chunk = os.read(child.process.stdout.fileno(), 65536)
    if not chunk:
        return False
    child.buffer += chunk
    *lines, child.buffer = child.buffer.split(b"\n")
    if len(child.buffer) > MAX_EVENT_LINE:
        raise SandboxError(f"The job wrote more than {MAX_EVENT_LINE // 2**20} MB on its event stream without a line "
                           "end, and was stopped.")
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # not ours: the child keeps its own stream clean, so this is noise, never an event
        if record.get("kind") in (RESULT_LINE, ERROR_LINE):
            child.outcome = record
        else:
            on_event(record)
    return True


def _sample(probe: psutil.Process, on_sample) -> None:
    try:
        on_sample(probe)
    except psutil.Error:
        pass  # the child is exiting


def _kill_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    process.stdout.close()
    process.stderr.close()


def _outcome(child: _Child, code: int | None, limits: Limits, stderr: str) -> dict:
    if child.outcome and child.outcome.get("kind") == RESULT_LINE and code == 0:
        return child.outcome["result"]
    if child.outcome and child.outcome.get("kind") == ERROR_LINE:
        if child.outcome.get("error_type") == "Cancelled":
            raise JobCancelled("The job was cancelled; it stopped at a step boundary.")
        raise SandboxError(child.outcome.get("error") or "The job failed.")
    if code == -signal.SIGXCPU:
        raise SandboxError("The model process used up its CPU-time limit and was stopped.")
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        raise SandboxError(f"The model process was killed by {name}; it may have run out of memory "
                           f"(limit {limits.memory_mb} MB) or CPU time.")
    tail = stderr.strip().splitlines()[-1:] or ["no output"]
    if "MemoryError" in stderr or "std::bad_alloc" in stderr:
        raise SandboxError(f"The model process ran out of memory (limit {limits.memory_mb} MB).")
    raise SandboxError(f"The model process exited with code {code}: {tail[0][:500]}")
