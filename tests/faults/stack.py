"""A Slimforge of the test's own for the fault tests: its own Redis (which the test stops and starts again), a web
server and a worker on it, on the run's test database. Clients reach it over HTTP with an API token, as anyone
would; nothing in the test process talks to its Redis."""
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from launcher.redis_server import redis_server_binary
from tests import processes


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

    def start(self) -> None:
        self.redis.start()
        worker = processes.start_worker(self.folder / "worker.log", queue=self.env["SLIMFORGE_DEFAULT_QUEUE"],
                                        env=self.env)
        web, self.url = processes.start_web(self.folder / "web.log", env=self.env)
        self.processes += [worker, web]

    def stop(self) -> None:
        for process in reversed(self.processes):
            processes.stop(process)
        self.redis.stop()
        processes.wait_for_database_sessions_to_end()

    def client(self, token: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        return session


def own_stack(folder: Path, env: dict | None = None) -> Stack:
    name = f"fault-{folder.name}-{processes.free_port()}"
    own_redis = RedisServer(folder / "redis")
    return Stack(folder=folder, redis=own_redis, env={
        "REDIS_URL": own_redis.url, "SLIMFORGE_REDIS_PREFIX": name, "SLIMFORGE_DEFAULT_QUEUE": name, **(env or {})})
