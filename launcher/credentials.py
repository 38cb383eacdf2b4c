"""Passwords of the embedded servers: generated once, kept under var/credentials (0700, files 0600).

Only the launcher reads them; it hands the web and worker processes URLs that carry them. Nothing that runs a
user's model can: the job sandbox sees neither var/ nor the worker's environment.
"""
import os
import secrets
from pathlib import Path

ADMIN = "postgres-admin"
APP = "postgres-app"
REDIS = "redis"


def credential(var_dir: Path, name: str) -> str:
    folder = Path(var_dir) / "credentials"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made on an earlier start, or by another launcher a moment ago
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))  # URL-safe: it goes into DATABASE_URL and REDIS_URL as is
    return path.read_text().strip()
