"""The API over HTTP: where the server is and which token to use, and its answers as Python or a clear error."""
import json
import os
import stat
from pathlib import Path

import click
import requests

CONFIG_PATH = Path(os.environ.get("SLIMFORGE_CONFIG", Path.home() / ".config" / "slimforge" / "cli.json"))
TIMEOUT_S = 60


class ApiError(click.ClickException):
    """What the server refused, as it said it: its detail, or each field it named."""

    def __init__(self, response: requests.Response):
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:300] or response.reason}
        if isinstance(body, dict) and set(body) != {"detail"}:
            lines = [f"{field}: {' '.join(v) if isinstance(v, list) else v}" for field, v in body.items()]
            message = "; ".join(lines)
        else:
            message = body.get("detail", body) if isinstance(body, dict) else body
        super().__init__(f"{response.status_code} {response.reason}: {message}")
        self.status_code = response.status_code


def save_login(url: str, token: str) -> Path:
    CONFIG_PATH.parent.mkdir(parents=True, exist_ok=True)
    partial = CONFIG_PATH.with_suffix(".partial")
    partial.write_text(json.dumps({"url": url, "token": token}))
    partial.chmod(stat.S_IRUSR | stat.S_IWUSR)  # the token is a password
    partial.replace(CONFIG_PATH)
    return CONFIG_PATH


def saved_login() -> dict:
    try:
        return json.loads(CONFIG_PATH.read_text())
    except (OSError, ValueError):
        return {}


class Client:
    def __init__(self, url: str, token: str | None):
        self.url, self.token = url.rstrip("/"), token
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    @classmethod
    def from_settings(cls, url: str | None = None) -> "Client":
        """SLIMFORGE_URL / SLIMFORGE_TOKEN, else what `slimforge login` saved."""
        saved = saved_login()
        url = url or os.environ.get("SLIMFORGE_URL") or saved.get("url")
        token = os.environ.get("SLIMFORGE_TOKEN") or saved.get("token")
        if not url or not token:
            raise click.ClickException("Not logged in: run `slimforge login URL USERNAME` first (or set "
                                       "SLIMFORGE_URL and SLIMFORGE_TOKEN).")
        return cls(url, token)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, timeout=TIMEOUT_S, **kwargs)
        except requests.ConnectionError as exc:
            raise click.ClickException(f"Cannot reach Slimforge at {self.url}: {exc.__class__.__name__}") from None
        if response.status_code >= 400:
            raise ApiError(response)
        return response

    def get(self, path: str, **params):
        return self.request("GET", path, params=params or None).json()

    def post(self, path: str, body: dict | None = None, files=None):
        response = self.request("POST", path, json=body if files is None else None,
                                data=body if files is not None else None, files=files)
        return response.json() if response.content else {}

    def download(self, path: str, target: Path) -> Path:
        response = self.request("GET", path, stream=True)
        partial = target.with_name(target.name + ".partial")
        with open(partial, "wb") as sink:
            for block in response.iter_content(1 << 20):
                sink.write(block)
        partial.replace(target)
        return target

    def websocket_url(self, path: str) -> str:
        return ("wss://" if self.url.startswith("https://") else "ws://") + self.url.split("://", 1)[1] + path
