"""The operating-system sandbox around every process that runs a user's model or data: bubblewrap (what Flatpak uses).

The job's process gets:
- no network: a fresh network namespace, holding only its own loopback (DDP ranks meet there), not the host's;
  except a multi-host job's (optimizers.training.hosts), whose replicas must reach the other hosts': it shares the
  host's network, on workers whose operator consented by setting SLIMFORGE_WORKER_HOST_ADDRESS;
- a file system of the read-only runtime (the system's /usr, the Python installation, the virtualenv, the
  project's `optimizers` package) and the job's own folders, writable where the job writes; no `var/`, no secret
  key, no media of other users, no database or Redis socket; a private /tmp;
- a fresh PID namespace: /proc shows the job's processes only, never its parents' environments;
- an unprivileged identity: when the worker runs as root the job runs as SANDBOX_UID, with no capabilities and
  no_new_privs (setuid programs gain nothing);
- the seccomp filter of tasks.seccomp.

Without bubblewrap there is no isolation, and the worker refuses untrusted models unless an administrator sets
SLIMFORGE_ALLOW_UNSANDBOXED=1 (then it says so on the workers page).
"""
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tasks import seccomp

REPO_ROOT = Path(__file__).resolve().parent.parent
SANDBOX_UID = SANDBOX_GID = 65534  # nobody / nogroup
ALLOW_UNSANDBOXED = "SLIMFORGE_ALLOW_UNSANDBOXED"
BUBBLEWRAP, NONE = "bubblewrap", "none"
# Read-only, where they exist: the dynamic linker's configuration, the time zone, the CPUs' description (torch
# sizes its thread pools from it), and the network interfaces' names (gloo looks up the loopback there).
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime",
                "/sys/devices/system/cpu", "/sys/class/net", "/sys/devices/virtual/net")


@dataclass(frozen=True)
class Isolation:
    mode: str  # BUBBLEWRAP or NONE
    detail: str  # what it does, or why there is none, in words

    @property
    def active(self) -> bool:
        return self.mode == BUBBLEWRAP


class Unsandboxed(Exception):
    """No isolation is available and none was allowed: the job must not run."""


@functools.cache
def detect() -> Isolation:
    """What this worker can do, probed once: bwrap found and able to build the sandbox here."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Isolation(NONE, "bubblewrap (bwrap) is not installed")
    probe = subprocess.run(_bwrap_options(readable=[], writable=[]) + ["/usr/bin/true"], capture_output=True,
                           text=True, timeout=30)
    if probe.returncode != 0:
        return Isolation(NONE, f"bubblewrap cannot build a sandbox here: {probe.stderr.strip()[:300]}")
    parts = ["no network", "private file system", "private PIDs"]
    parts.append(f"uid {SANDBOX_UID}, no capabilities" if os.geteuid() == 0 else f"uid {os.geteuid()}, unprivileged")
    parts.append("seccomp filter" if seccomp.supported() else "no seccomp filter (not x86-64)")
    return Isolation(BUBBLEWRAP, f"bubblewrap: {', '.join(parts)}")


def require() -> Isolation:
    """The isolation to run untrusted code with; raises Unsandboxed when there is none and none was allowed."""
    isolation = detect()
    if not isolation.active and os.environ.get(ALLOW_UNSANDBOXED) != "1":
        raise Unsandboxed(f"This worker has no sandbox ({isolation.detail}) and will not run uploaded models "
                          f"without one; install bubblewrap, or set {ALLOW_UNSANDBOXED}=1 to accept the risk.")
    return isolation


def describe() -> str:
    """For the workers page and the API: the isolation in force, or that there is none and whether it is allowed."""
    isolation = detect()
    if isolation.active:
        return isolation.detail
    allowed = os.environ.get(ALLOW_UNSANDBOXED) == "1"
    return f"none ({isolation.detail}); untrusted models {'ALLOWED by ' + ALLOW_UNSANDBOXED if allowed else 'refused'}"


@dataclass
class Command:
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    wrapped: bool = False  # run by bwrap, which exits with 128 + N when the job is killed by signal N

    def signal_of(self, code: int | None) -> int | None:
        """The exit code as Popen gives it for an unwrapped process: a signal's death as -N."""
        if self.wrapped and code is not None and code > 128:
            return -(code - 128)
        return code

    def close(self) -> None:
        for fd in self.pass_fds:
            os.close(fd)


def command(argv: list[str], *, readable: list[str], writable: list[str], workdir: str,
            network: bool = False) -> Command:
    """`argv` inside the sandbox, seeing `readable` (read-only) and `writable` besides the runtime, and nothing
    else of the worker's (and the host's network only with `network`).

    Without isolation (allowed by the administrator) it is `argv` itself.
    """
    if not require().active:
        return Command(argv)
    if os.geteuid() == 0:
        for folder in writable:
            _give_to_sandbox(Path(folder))
        for path in readable:
            _readable_by_sandbox(Path(path))
    options = _bwrap_options(readable=readable, writable=writable, network=network)
    fds: tuple[int, ...] = ()
    if seccomp.supported():
        fds = (_seccomp_fd(),)
        options += ["--seccomp", str(fds[0])]
    options += ["--chdir", workdir, "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
                "--setenv", "USER", "slimforge"]
    if os.geteuid() == 0:  # root inside a private namespace is still root to the files it is given: drop it
        options += ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_GID}", "--clear-groups",
                    "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
    return Command(options + argv, fds, wrapped=True)


def _bwrap_options(*, readable: list[str], writable: list[str], network: bool = False) -> list[str]:
    options = ["bwrap", *([] if network else ["--unshare-net"]), "--unshare-pid", "--unshare-ipc", "--unshare-uts",
               "--unshare-cgroup-try",
               "--die-with-parent", "--new-session", "--hostname", "slimforge-job",
               "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
               "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
               "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm",
               "--perms", "1777", "--tmpfs", "/tmp"]
    made: set[str] = set()
    for path in SYSTEM_FILES:
        options += _parents(path, made) + ["--ro-bind-try", path, path]
    if os.geteuid() == 0:
        options += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                    "--cap-add", "CAP_SETPCAP"]  # for setpriv, which drops them all with the identity
    options += _gpu_devices()
    for source, kind in [*((path, "--ro-bind") for path in _runtime() + readable),
                         *((path, "--bind") for path in writable)]:
        options += _parents(source, made) + [kind, source, source]
    return options


def _runtime() -> list[str]:
    """The Python installation, the virtualenv and the project's own package: all a job needs to run, read-only."""
    paths = {str(Path(sys.base_prefix).resolve()), str(Path(sys.prefix).resolve()), str(REPO_ROOT / "optimizers")}
    return sorted(path for path in paths if not path.startswith("/usr/"))


def _gpu_devices() -> list[str]:
    """The NVIDIA device nodes and the sysfs NVML reads, when this machine has them."""
    devices = sorted(str(path) for path in Path("/dev").glob("nvidia*"))
    if not devices:
        return []
    options = [option for device in devices for option in ("--dev-bind", device, device)]
    return options + ["--ro-bind", "/sys", "/sys"]


def _parents(path: str, made: set[str]) -> list[str]:
    """Directories above a mount point, made traversable (bwrap would make them 0700, closed to SANDBOX_UID)."""
    options, parts = [], Path(path).parts[1:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:depth])
        if folder not in made and folder not in ("/usr", "/tmp", "/dev", "/proc"):
            made.add(folder)
            options += ["--perms", "0755", "--dir", folder]
    return options


def _give_to_sandbox(folder: Path) -> None:
    """A folder the job writes: SANDBOX_UID's (the worker, as root, still reads and removes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, SANDBOX_UID, SANDBOX_GID, follow_symlinks=False)


def _readable_by_sandbox(path: Path) -> None:
    """An input the job reads: readable by others (the folders the worker makes are 0700)."""
    path.chmod(path.stat().st_mode | (0o005 if path.is_dir() else 0o004))


def _seccomp_fd() -> int:
    read, write = os.pipe()
    os.write(write, seccomp.program())  # far below a pipe's buffer: never blocks
    os.close(write)
    return read
