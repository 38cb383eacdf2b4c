"""What every embedded server shares: the record of one running server, the system user that runs them when
the launcher is root, folders only that user can use, and waiting for a server to answer.
"""
import importlib.util
import os
import pwd
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from launcher.processes import stop_processes, warn

SERVICE_USER = "slimforge"  # postgres refuses to run as root, so root runs the servers as this user


class EmbeddedServerError(RuntimeError):
    pass


@dataclass
class EmbeddedServer:
    name: str
    url: str
    process: subprocess.Popen | None  # None: a server another launcher started; not ours to stop
    log_path: Path
    stop_signal: int = signal.SIGTERM

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None:
            stop_processes([(self.process, self.stop_signal)], timeout=timeout)


def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it (no side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"The {name} package is missing: `make run` installs requirements.txt")
    return Path(next(iter(spec.submodule_search_locations)))


def service_ids() -> tuple[int, int] | None:
    """(uid, gid) to run the servers as when we are root, creating the system user once; None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        useradd = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                   "--shell", "/usr/sbin/nologin", SERVICE_USER]
        result = subprocess.run(useradd, capture_output=True, text=True)
        if result.returncode != 0:
            raise EmbeddedServerError(f"PostgreSQL refuses to run as root, and creating the system user "
                                      f"{SERVICE_USER} failed: {result.stderr.strip()}") from None
        entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def own_folder(folder: Path, ids: tuple[int, int] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    info = folder.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise EmbeddedServerError(f"{folder} is a symbolic link; refusing to use it for a server's data")
    uid, gid = ids or (os.geteuid(), os.getegid())
    if ids and (info.st_uid, info.st_gid) != ids:
        os.chown(folder, uid, gid)
    elif info.st_uid != uid:
        raise EmbeddedServerError(f"{folder} belongs to another user (uid {info.st_uid}); remove it")
    folder.chmod(0o700)


def let_service_user_reach(paths: list[Path], trees: list[Path]) -> None:
    """The service user must pass through every parent folder and read the wheels' binaries and libraries."""
    for path in paths:
        for parent in list(path.parents)[:-1]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                warn(f"Letting the {SERVICE_USER} user pass through {parent} (chmod o+x)")
                parent.chmod(mode | stat.S_IXOTH)
    for tree in trees:
        for root, dirs, files in os.walk(tree):
            for name in dirs + files:
                entry = Path(root) / name
                mode = entry.stat().st_mode
                wanted = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) or mode & stat.S_IXUSR else 0)
                if mode & wanted != wanted:
                    entry.chmod(mode | wanted)


def wait_until(probe: Callable[[], object], process: subprocess.Popen, timeout: float, name: str,
                log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise EmbeddedServerError(f"{name} exited with code {process.returncode} while starting. "
                                      f"The end of {log_path}:\n{tail(log_path)}")
        try:
            probe()
            return
        except Exception as error:
            if time.monotonic() > deadline:
                raise EmbeddedServerError(f"{name} did not answer within {timeout:.0f} s ({error}). "
                                          f"The end of {log_path}:\n{tail(log_path)}") from None
        time.sleep(0.1)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
