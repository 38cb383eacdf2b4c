"""Red team, against the embedded servers: nothing connects without the generated passwords, and the role
Slimforge connects as cannot do a superuser's work (read other roles' passwords, run programs on the server).

Real servers in a throwaway var folder, as `make run` starts them.
"""
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import psutil
import psycopg2
import pytest
import redis

from launcher.credentials import ADMIN, APP, REDIS
from launcher.postgres import DATABASE, postgres_bin_dir, postgres_socket_dir, start_postgres
from launcher.redis_server import start_redis
from launcher.servers import service_ids


@pytest.fixture
def var_dir():
    # Not pytest's tmp_path: as root, the servers run as another user, who must be able to reach the folder.
    path = Path(tempfile.mkdtemp(prefix="slimforge-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _refused(**connect) -> str:
    with pytest.raises(psycopg2.OperationalError) as caught:
        psycopg2.connect(connect_timeout=3, **connect).close()
    return str(caught.value)


def test_postgres_needs_a_password_and_slimforge_is_no_superuser(var_dir):
    server = start_postgres(var_dir)
    socket_dir = str(postgres_socket_dir(var_dir))
    try:
        for user in ("postgres", "slimforge"):
            assert "password" in _refused(host=socket_dir, dbname=DATABASE, user=user)
            assert "password authentication failed" in _refused(host=socket_dir, dbname=DATABASE, user=user,
                                                                password="guessed")
        with psycopg2.connect(server.url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
            assert cursor.fetchone() == (False, False)
            for attack in ("SELECT rolpassword FROM pg_authid", "COPY (SELECT 1) TO PROGRAM 'true'",
                           "CREATE ROLE intruder SUPERUSER", "ALTER ROLE slimforge SUPERUSER"):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cursor.execute(attack)
                connection.rollback()
            cursor.execute("CREATE TABLE owned_by_the_app (x int)")  # but its own database is its own
        connection.close()
    finally:
        server.stop()


def test_redis_needs_its_password(var_dir):
    server = start_redis(var_dir)
    try:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).set("x", "1")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port, password="guessed", socket_timeout=2).ping()
        assert redis.Redis.from_url(server.url).ping()
        password = (var_dir / "credentials" / REDIS).read_text().strip()
        assert password not in " ".join(psutil.Process(server.process.pid).cmdline())  # /proc is world-readable
    finally:
        server.stop()


def test_credentials_are_private_files(var_dir):
    start_postgres(var_dir).stop()
    start_redis(var_dir).stop()
    folder = var_dir / "credentials"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in (ADMIN, APP, REDIS):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600 and len((folder / name).read_text()) >= 40


def test_a_folder_an_earlier_version_made_with_trust_is_converted_and_keeps_its_data(var_dir):
    pgdata, ids = var_dir / "postgres", service_ids()
    pgdata.mkdir(mode=0o700)
    kwargs = {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}
    if ids:
        os.chown(pgdata, *ids)
    subprocess.run([str(postgres_bin_dir() / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
                    "--no-locale"], check=True, capture_output=True, cwd=pgdata, **kwargs)
    server = start_postgres(var_dir)  # creates the database, as the earlier version did, then converts
    socket_dir = str(postgres_socket_dir(var_dir))
    server.stop()
    (pgdata / "pg_hba.conf").write_text("local all all trust\n")  # as the earlier version left it
    server = start_postgres(var_dir)
    try:
        admin = (var_dir / "credentials" / ADMIN).read_text().strip()
        assert "password" in _refused(host=socket_dir, dbname=DATABASE, user="postgres")
        with psycopg2.connect(host=socket_dir, dbname=DATABASE, user="postgres", password=admin) as connection:
            with connection.cursor() as cursor:
                cursor.execute("CREATE TABLE made_by_the_superuser (name text)")
                cursor.execute("INSERT INTO made_by_the_superuser VALUES ('kept')")
        connection.close()
    finally:
        server.stop()
    server = start_postgres(var_dir)
    try:
        with psycopg2.connect(server.url) as connection, connection.cursor() as cursor:
            cursor.execute("INSERT INTO made_by_the_superuser VALUES ('and writable')")
            cursor.execute("SELECT name FROM made_by_the_superuser ORDER BY name")
            assert cursor.fetchall() == [("and writable",), ("kept",)]
        connection.close()
    finally:
        server.stop()
