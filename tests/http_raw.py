"""Send an HTTP request body the way an attacker would, over a raw socket: a declared length that never comes,
or a chunked body that never ends. Used by the red-team tests and bench/body_limit.py."""
import select
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

CHUNK = 256 * 1024


@dataclass
class Outcome:
    status: int | None  # None: the server closed the connection without an answer
    sent_bytes: int  # body bytes the server took before it answered or closed
    seconds: float
    answer: bytes


EARLY_ANSWER_S = 1.0


def flood(url: str, path: str, *, declared: int | None, total: int, headers: dict | None = None,
          timeout: float = 60) -> Outcome:
    """POST up to `total` body bytes to `path`, declaring `declared` as Content-Length (chunked when None), and
    stop at the server's first answer or when it stops reading."""
    parts = urlsplit(url)
    lines = [f"POST {path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", "Content-Type: application/octet-stream"]
    lines.append(f"Content-Length: {declared}" if declared is not None else "Transfer-Encoding: chunked")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    started = time.monotonic()
    sent, answer = 0, b""
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        # A moment for an answer to the headers alone (a declared length over the limit): read before sending a
        # byte of body, or the server's close with the body unread resets the connection and loses its answer.
        if select.select([connection], [], [], EARLY_ANSWER_S)[0]:
            answer = _read_answer(connection, started + timeout)
            status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
            return Outcome(status, 0, time.monotonic() - started, answer)
        payload = bytes(CHUNK)
        framed = payload if declared is not None else f"{CHUNK:x}\r\n".encode() + payload + b"\r\n"
        connection.setblocking(False)
        deadline, pending = started + timeout, b""
        while time.monotonic() < deadline:
            want_write = sent < total or bool(pending)
            readable, writable, _ = select.select([connection], [connection] if want_write else [], [], 0.5)
            if readable:
                answer = _read_answer(connection, deadline)
                break
            if writable:
                pending = pending or framed
                try:
                    written = connection.send(pending)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
                pending, sent = pending[written:], sent + written  # framing bytes counted too: a few per chunk
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    return Outcome(status, sent, time.monotonic() - started, answer)


def _read_answer(connection: socket.socket, deadline: float) -> bytes:
    received = b""
    while time.monotonic() < deadline:
        try:
            data = connection.recv(65536)
        except BlockingIOError:
            if _complete(received):
                return received
            time.sleep(0.02)
            continue
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data
    return received


def _complete(answer: bytes) -> bool:
    head, separator, body = answer.partition(b"\r\n\r\n")
    if not separator:
        return False
    lengths = [line.split(b":", 1)[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    return not lengths or len(body) >= int(lengths[0])
