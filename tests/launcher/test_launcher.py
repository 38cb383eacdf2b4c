"""The embedded PostgreSQL and Redis, for real: start, keep data across a restart, leave nothing running.

No Django database here: these tests start their own servers in a throwaway var folder."""
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dj_database_url
import psutil
import psycopg2
import pytest
import redis

from launcher.postgres import postgres_socket_dir, postgres_url, start_postgres
from launcher.processes import spawn, stop_processes
from launcher.redis_server import start_redis
from tests.paths import REPO_ROOT as ROOT


@pytest.fixture
def var_dir():
    # Not pytest's tmp_path: as root, the servers run as another user, who must be able to reach the folder.
    path = Path(tempfile.mkdtemp(prefix="slimforge-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def processes_using(folder: Path) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command_line = " ".join(process.info["cmdline"] or [])
        if str(folder) in command_line:
            found.append(f"{process.pid}: {command_line}")
    return found


def wait_until_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        time.sleep(0.1)
    return alive


def test_embedded_servers_keep_their_data_across_a_restart(var_dir):
    postgres, cache = start_postgres(var_dir), start_redis(var_dir)
    try:
        with psycopg2.connect(postgres.url) as connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE kept (name text)")
            cursor.execute("INSERT INTO kept VALUES ('alice')")
        connection.close()
        redis.Redis.from_url(cache.url).set("kept", "bob")
        pids = [postgres.process.pid, cache.process.pid]
        pids += [child.pid for child in psutil.Process(postgres.process.pid).children(recursive=True)]
    finally:
        postgres.stop()
        cache.stop()
    assert wait_until_gone(pids) == []

    postgres, cache = start_postgres(var_dir), start_redis(var_dir)
    try:
        with psycopg2.connect(postgres.url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT name FROM kept")
            assert cursor.fetchall() == [("alice",)]
        connection.close()
        assert redis.Redis.from_url(cache.url).get("kept") == b"bob"
    finally:
        postgres.stop()
        cache.stop()
    assert processes_using(var_dir) == []


def test_servers_listen_only_on_a_socket_and_a_free_local_port(var_dir):
    postgres, cache = start_postgres(var_dir), start_redis(var_dir)
    try:
        database = dj_database_url.parse(postgres.url)
        assert database["HOST"] == str(postgres_socket_dir(var_dir)) and database["NAME"] == "slimforge"
        listening = {conn.laddr for pid in (postgres.process.pid, cache.process.pid)
                     for conn in psutil.Process(pid).net_connections(kind="inet") if conn.status == "LISTEN"}
        port = int(cache.url.rsplit(":", 1)[1].split("/")[0])
        assert [(address.ip, address.port) for address in listening] == [("127.0.0.1", port)]
        assert port not in (5432, 6379)
    finally:
        postgres.stop()
        cache.stop()


def test_a_second_start_on_a_running_folder_uses_the_running_servers(var_dir):
    postgres, cache = start_postgres(var_dir), start_redis(var_dir)
    try:
        again_postgres, again_cache = start_postgres(var_dir), start_redis(var_dir)
        assert (again_postgres.url, again_cache.url) == (postgres.url, cache.url)
        assert again_postgres.process is None and again_cache.process is None  # not theirs to stop
    finally:
        postgres.stop()
        cache.stop()


def test_a_var_folder_too_long_for_a_socket_gets_a_short_socket_folder_under_tmp():
    long_var_dir = Path("/srv") / ("x" * 120) / "var"
    socket_dir = postgres_socket_dir(long_var_dir)
    assert socket_dir.parent == Path("/tmp") and len(str(socket_dir / ".s.PGSQL.5432")) <= 107
    assert socket_dir == postgres_socket_dir(long_var_dir)  # the same folder on every start
    assert dj_database_url.parse(postgres_url(socket_dir, "a-password"))["HOST"] == str(socket_dir)


@pytest.fixture
def launcher(var_dir):
    """`python -m launcher servers` on the var folder, with its output lines in a queue."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env["SLIMFORGE_VAR_DIR"] = str(var_dir)
    process = subprocess.Popen([sys.executable, "-m", "launcher", "servers"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    process.lines = queue.Queue()
    threading.Thread(target=lambda: [process.lines.put(line) for line in process.stdout], daemon=True).start()
    yield process
    if process.poll() is None:
        process.terminate()
        process.wait(60)


def redis_url_printed_by(launcher: subprocess.Popen) -> str:
    output = ""
    while "export REDIS_URL" not in output:
        try:
            output += launcher.lines.get(timeout=60)
        except queue.Empty:
            pytest.fail(f"the launcher printed no REDIS_URL within 60 s:\n{output}")
    return output.split("export REDIS_URL='")[1].split("'")[0]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_launcher_stops_the_servers_it_started(var_dir, launcher, stop_signal):
    assert redis.Redis.from_url(redis_url_printed_by(launcher)).ping()
    launcher.send_signal(stop_signal)
    assert launcher.wait(60) == 0
    assert processes_using(var_dir) == []


def test_servers_die_with_a_killed_launcher(var_dir, launcher):
    redis_url_printed_by(launcher)
    servers = [child.pid for child in psutil.Process(launcher.pid).children()]
    assert len(servers) == 2
    launcher.kill()
    launcher.wait()
    assert wait_until_gone(servers) == []
    assert processes_using(var_dir) == []


def test_a_child_that_ignores_its_stop_signal_is_killed_with_its_own_children():
    stubborn = spawn(["sh", "-c", "trap '' TERM; sleep 300 & sleep 300"])
    time.sleep(0.3)  # let the shell set its trap
    grandchildren = [child.pid for child in psutil.Process(stubborn.pid).children()]
    started = time.monotonic()
    stop_processes([(stubborn, signal.SIGTERM)], timeout=1)
    assert stubborn.returncode == -signal.SIGKILL and time.monotonic() - started < 10
    assert grandchildren and wait_until_gone(grandchildren) == []


def test_run_refuses_a_taken_port_before_starting_the_web_server(var_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, "PORT": str(taken.getsockname()[1]), "SLIMFORGE_VAR_DIR": str(var_dir),
               "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "REDIS_URL": "redis://127.0.0.1:1/0"}
        result = subprocess.run([sys.executable, "-m", "launcher", "run"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"Port {env['PORT']} on 127.0.0.1 is not free" in result.stderr
