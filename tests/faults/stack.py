"""A Slimforge of the test's own for the fault tests: its own Redis (which the test stops and starts again), its own
database (so the session's worker, sweeping the shared test database's outbox onto its own broker, cannot take this
stack's jobs), a web server and a worker on them. Clients reach it over HTTP with an API token, as anyone would;
nothing in the test process talks to its Redis or its database."""
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import redis
import requests
from django.conf import settings

from launcher.redis_server import redis_server_binary
from tests import processes

MAKE_USER = """
from django.contrib.auth import get_user_model
from knox.models import AuthToken
user = get_user_model().objects.create_user({name!r}, password={password!r})
print("TOKEN", AuthToken.objects.create(user)[1])
"""


def _admin_connection():
    db = settings.DATABASES["default"]
    connection = psycopg2.connect(dbname="postgres", user=db["USER"], password=db["PASSWORD"] or None,
                                  host=db["HOST"] or None, port=db["PORT"] or None)
    connection.autocommit = True
    return connection


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=processes.REPO_ROOT, capture_output=True,
                          text=True, env=processes.process_env() | env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class RedisServer:
    """redis-server on a fixed port, keeping nothing on disk: a restart forgets every key, as a crashed Redis
    without persistence does."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, processes.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        log = open(self.folder / "redis.log", "ab")
        self.process = subprocess.Popen(
            [str(redis_server_binary()), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=1).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start on {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # as a crash: no save, no goodbye to the clients
            self.process.wait()


@dataclass
class Stack:
    folder: Path
    redis: RedisServer
    env: dict
    processes: list = field(default_factory=list)
    url: str = ""
    database: str = ""

    def start(self) -> None:
        name = self.env["SLIMFORGE_DEFAULT_QUEUE"].replace("-", "_")
        connection = _admin_connection()
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        self.database = name
        base = processes.test_database_url()
        self.env["DATABASE_URL"] = base[:base.rindex("/") + 1] + name
        _manage(self.env, "migrate", "--noinput")
        self.redis.start()
        worker = processes.start_worker(self.folder / "worker.log", queue=self.env["SLIMFORGE_DEFAULT_QUEUE"],
                                        env=self.env)
        web, self.url = processes.start_web(self.folder / "web.log", env=self.env)
        self.processes += [worker, web]

    def stop(self) -> None:
        for process in reversed(self.processes):
            processes.stop(process)
        self.redis.stop()
        if self.database:
            connection = _admin_connection()
            with connection.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            connection.close()

    def user(self, name: str, password: str = "secret-pw-of-the-stack") -> requests.Session:
        """A user of this stack's own, and an API client with a token of theirs."""
        token = _manage(self.env, "shell", "-c", MAKE_USER.format(name=name, password=password))
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token.split('TOKEN', 1)[1].strip()}"
        return session


def own_stack(folder: Path, env: dict | None = None) -> Stack:
    name = f"fault-{folder.name}-{processes.free_port()}"
    own_redis = RedisServer(folder / "redis")
    return Stack(folder=folder, redis=own_redis, env={
        "REDIS_URL": own_redis.url, "SLIMFORGE_REDIS_PREFIX": name, "SLIMFORGE_DEFAULT_QUEUE": name, **(env or {})})
