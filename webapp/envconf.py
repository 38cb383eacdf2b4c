"""Strict helpers that read settings from the environment and fail at start-up with a clear message."""
import ipaddress
import os
from pathlib import Path


class ImproperEnvironment(RuntimeError):
    pass


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ImproperEnvironment(
            f"{name} is not set. Start Slimforge with `make run` (it starts embedded servers) "
            f"or set {name} yourself."
        )
    return value


def env_ip_address(name: str) -> str:
    """An optional IP address (v4 or v6): "" when unset; a host name or anything else stops the start."""
    raw = os.environ.get(name, "").strip()
    if raw:
        try:
            ipaddress.ip_address(raw)
        except ValueError:
            raise ImproperEnvironment(
                f"{name} must be an IP address of this machine, e.g. 10.0.0.5; got {raw!r}") from None
    return raw


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperEnvironment(f"{name} must be a boolean (1/0, true/false, yes/no); got {raw!r}")


def env_int(name: str, default: int, *, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperEnvironment(f"{name} must be an integer; got {raw!r}") from None
    if not low <= value <= high:
        raise ImproperEnvironment(f"{name} must be between {low} and {high}; got {value}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def var_dir() -> Path:
    """The folder for data that survives restarts (media, embedded servers, the secret key)."""
    base = Path(__file__).resolve().parent.parent
    return Path(os.environ.get("SLIMFORGE_VAR_DIR") or base / "var").resolve()


def secret_key(folder: Path) -> str:
    """SLIMFORGE_SECRET_KEY, or a random key made once and kept under the var folder."""
    explicit = os.environ.get("SLIMFORGE_SECRET_KEY")
    if explicit:
        return explicit
    path = folder / "secret_key"
    if not path.exists():
        import secrets

        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()
