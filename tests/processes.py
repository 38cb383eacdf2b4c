"""Real worker and web processes for the integration and browser tests, on the test database."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import psutil
from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """The URL of the database pytest-django made, for processes started by the tests."""
    db = settings.DATABASES["default"]
    host = quote(db["HOST"] or "", safe="") if str(db["HOST"]).startswith("/") else db["HOST"]
    port = f":{db['PORT']}" if db.get("PORT") else ""
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    return f"postgres://{quote(db['USER'], safe='')}{password}@{host}{port}/{db['NAME']}"


def process_env() -> dict:
    env = dict(os.environ)
    env.update(DATABASE_URL=test_database_url(), DJANGO_SETTINGS_MODULE="webapp.settings",
               PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(args: list[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:
    log = open(log_path, "wb")
    return subprocess.Popen(args, cwd=REPO_ROOT, env=process_env() | (env or {}), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def start_worker(log_path: Path, *, queue: str = "", node: str = "", env: dict | None = None,
                 celery: tuple[str, ...] = ("-m", "celery")) -> subprocess.Popen:
    """A worker on the run's queue (or `queue`), named `queue@host` (or `node`, Celery's %h and all); `celery` is
    what starts Celery (tests.skewed_worker, say)."""
    queue = queue or settings.CELERY_TASK_DEFAULT_QUEUE
    process = start([sys.executable, *celery, "-A", "tasks", "worker", "-Q", queue, "-c", "1",
                     "-n", node or f"{queue}@%h", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
                    log_path, env)
    _wait_for(lambda: b"ready." in log_path.read_bytes(), process, log_path, "the Celery worker")
    return process


WEB_SERVER = ["-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1", "--no-access-log", "--port"]


def start_web(log_path: Path, server: list[str] = WEB_SERVER, env: dict | None = None,
              port: int | None = None) -> tuple[subprocess.Popen, str]:
    """A web server on a free port, or `port` (Uvicorn with Slimforge's application, as `make run` starts it, unless
    `server` gives another command line ending where the port goes)."""
    port = port or free_port()
    process = start([sys.executable, *server, str(port)], log_path, env)
    url = f"http://127.0.0.1:{port}"
    _wait_for(lambda: _answers(url + "/accounts/login/"), process, log_path, "the web server")
    return process, url


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _wait_for(ready, process, log_path: Path, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        if ready():
            return
        time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"{what} did not start within {timeout} s:\n{log_path.read_text()[-3000:]}")


def wait_for_database_sessions_to_end(timeout: float = 10) -> None:
    """A stopped process's PostgreSQL backends end a moment later; the test database is dropped only after."""
    import psycopg2

    db = settings.DATABASES["default"]
    connection = psycopg2.connect(dbname="postgres", user=db["USER"], password=db["PASSWORD"] or None,
                                  host=db["HOST"] or None, port=db["PORT"] or None)
    try:
        with connection.cursor() as cursor:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                # This process's own connections are not the stopped process's: they end with the test session.
                own = [c.laddr.port for c in psutil.Process().net_connections(kind="inet") if c.laddr] or [0]
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                               "(client_port IS NULL OR NOT client_port = ANY(%s))", [db["NAME"], own])
                if cursor.fetchone()[0] == 0:
                    return
                time.sleep(0.1)
    finally:
        connection.close()
