"""Issue-11 figures: what a stranger's oversized request body costs the web server, Daphne against Uvicorn.

    .venv/bin/python -m launcher test -- bench/body_limit.py -m slow -s -p no:cacheprovider    # about a minute

Each server runs Slimforge's application on the test database with a temporary folder of its own; a raw socket
POSTs 512 MiB of zeros to /api/models/ without signing in, once with Content-Length and once chunked, and stops at
the server's first answer ("closed": none within 30 s). Sampled every 50 ms: the server's resident memory and the
file system's usage (where a buffered body goes; servers unlink such files at once, so no listing shows them).
"Uvicorn, bare Django" is the baseline of the same run: Django's own handler under Uvicorn, without
webapp.body_limit. Daphne, what Slimforge ran on before, is measured when it is installed (the tests install it
for channels.testing). Writes "Request body limit" in bench/RESULTS.md.
"""
import importlib.util
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from bench.results import cpu_count, cpu_name, write_results
from tests import processes
from tests.http_raw import flood

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
BODY = 512 * 1024 ** 2
SERVERS = {
    "Daphne, Slimforge app": ["-m", "daphne", "-b", "127.0.0.1", "webapp.asgi:application", "-p"],
    "Uvicorn, bare Django": ["-m", "uvicorn", "webapp.asgi:django_asgi_app", "--host", "127.0.0.1",
                             "--no-access-log", "--port"],
    "Uvicorn, Slimforge app": processes.WEB_SERVER,
}


class Peaks:
    """The largest resident memory of a process tree and size of a folder, sampled in a thread."""

    def __init__(self, pid: int, folder: Path):
        self.pid, self.folder = pid, folder
        self.rss_mb = self.disk_mb = 0.0
        self._disk_before = shutil.disk_usage(folder).used
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        root = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                self.rss_mb = max(self.rss_mb, sum(p.memory_info().rss for p in tree) / 1024 ** 2)
            except psutil.Error:
                pass
            # The file system's usage, not the folder's listing: servers unlink their temporary files at once.
            self.disk_mb = max(self.disk_mb, (shutil.disk_usage(self.folder).used - self._disk_before) / 1024 ** 2)
            self._stop.wait(0.05)


def test_request_body_limit(tmp_path):
    rows, ours = [], []
    for name, server in SERVERS.items():
        if server[1] == "daphne" and importlib.util.find_spec("daphne") is None:
            rows.append(f"| {name} | not installed | | | | | |")
            continue
        for declared in (BODY, None):
            scratch = Path(tempfile.mkdtemp(dir=tmp_path))
            process, url = processes.start_web(tmp_path / "web.log", server, env={"TMPDIR": str(scratch)})
            try:
                idle_mb = psutil.Process(process.pid).memory_info().rss / 1024 ** 2
                with Peaks(process.pid, scratch) as peaks:
                    outcome = flood(url, "/api/models/", declared=declared, total=BODY, timeout=30)
                    time.sleep(0.3)  # the last samples, after the answer
            finally:
                processes.stop(process)
                shutil.rmtree(scratch, ignore_errors=True)
            if server is processes.WEB_SERVER:
                ours.append(outcome)
            rows.append(f"| {name} | {'Content-Length' if declared else 'chunked'} | {outcome.status or 'closed'} "
                        f"| {outcome.sent_bytes / 1024 ** 2:.1f} | {outcome.seconds:.2f} "
                        f"| {peaks.rss_mb - idle_mb:+.0f} | {peaks.disk_mb:.0f} |")
    table = ("| server | body | answer | MiB taken before answering | s | server memory growth MiB "
             "| disk growth MiB |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    print("\n" + table)
    write_results("Request body limit", f"A stranger POSTs {BODY // 1024 ** 2} MiB to /api/models/ (raw socket, "
                  f"stops at the first answer); see bench/body_limit.py. Machine: {cpu_name()}, {cpu_count()} cores, "
                  f"{time.strftime('%Y-%m-%d')}.\n\n{table}\n")
    assert all(outcome.status == 413 and outcome.sent_bytes < 64 * 1024 ** 2 for outcome in ours)
