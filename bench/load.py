"""Load, on this machine, with real servers (issue 12): writes "Load" in bench/RESULTS.md.

    make bench-load     # about 7 minutes; BENCH_LOAD_SECONDS=60 for a shorter streaming run

1. Streaming: 20 running experiments, each fed by its own emitter process through the worker's EventBridge at 2
   events a second, followed by 200 open pages (10 per experiment; WebSocket clients that speak the page's protocol,
   as in bench/live.py) for BENCH_LOAD_SECONDS (300). Measured: event latency from emit to receipt, the web server's
   memory (RSS) from when every page is open to the end, and errors (a page that lost its connection or an event).
2. A burst: 10 users submit 100 experiments each at once through the HTTP API (10 client threads). Measured: each
   submit's latency. Then, with the queue at its longest, three drain processes (the workers' stand-in,
   bench/load_drain.py: each job finishes at once) claim every experiment through the product's claim, and the
   claims are checked: each experiment exactly once, and the users interleaved (fair use's slots,
   SLIMFORGE_USER_MAX_RUNNING), where first come, first served would give one user's hundred in a row.
"""
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import requests
from django.contrib.auth import get_user_model
from knox.models import AuthToken

from bench.live import _cookie, _percentile
from bench.live import _page as live_page
from bench.results import cpu_count, cpu_name, write_results
from tests import processes
from tests.factories import ready_model
from tests.waiting import wait_until
from webapp.models import Experiment

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
BENCH = Path(__file__).resolve().parent
SECONDS = int(os.environ.get("BENCH_LOAD_SECONDS", "300"))
JOBS, PAGES, PER_SECOND = 20, 200, 2.0
USERS, SUBMITS_EACH = int(os.environ.get("BENCH_BURST_USERS", "10")), 100
FIGURES: dict[str, dict] = {}


WEB_WORKERS = os.environ.get("SLIMFORGE_WEB_WORKERS", "2")  # as `make run` starts it


@pytest.fixture
def own_web(process_logs, request):
    """A web server of this benchmark's own, as `make run` starts it (Uvicorn with SLIMFORGE_WEB_WORKERS processes),
    so its memory can be read."""
    command = [*processes.WEB_SERVER[:-1], "--workers", WEB_WORKERS, "--port"]
    server, url = processes.start_web(process_logs / f"load-web-{request.node.name}.log", server=command)
    yield server, url
    processes.stop(server)
    processes.wait_for_database_sessions_to_end()


def _rss_mb(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


async def _page(url: str, cookie: str, expected: int, latencies: list[float], errors: list[str],
                opened: list[int], all_open: asyncio.Event) -> None:
    """bench/live.py's page, whose failure is counted (the figure "errors") instead of ending the run."""
    try:
        await live_page(url, cookie, expected, latencies, opened, PAGES, all_open)
    except Exception as exc:  # noqa: BLE001
        errors.append(f"{type(exc).__name__}: {exc}")
        if not all_open.is_set():  # failed before it opened: the others must not wait for it
            opened.append(1)
            if len(opened) == PAGES:
                all_open.set()


async def _stream(base: str, cookie: str, experiments: list[int], web_pid: int) -> dict:
    events = int(SECONDS * PER_SECOND)
    latencies, errors, opened, all_open = [], [], [], asyncio.Event()
    pages = [asyncio.create_task(_page(f"{base}/ws/experiments/{experiments[i % JOBS]}/?after=0", cookie, events,
                                       latencies, errors, opened, all_open)) for i in range(PAGES)]
    await asyncio.wait_for(all_open.wait(), timeout=300)
    await asyncio.sleep(2.0)
    rss_before = _rss_mb(web_pid)
    emitters = [await asyncio.create_subprocess_exec(
        sys.executable, str(BENCH / "live_emitter.py"), str(pk), str(events), str(PER_SECOND),
        env=processes.process_env()) for pk in experiments]
    await asyncio.gather(*pages)
    codes = [await emitter.wait() for emitter in emitters]
    rss_after = _rss_mb(web_pid)
    ms = [1000 * value for value in latencies]
    return {"receipts": len(ms), "expected": events * PAGES, "p50": statistics.median(ms),
            "p95": _percentile(ms, 0.95), "max": max(ms), "errors": errors + [f"emitter exit {c}" for c in codes if c],
            "rss_before": rss_before, "rss_after": rss_after}


@pytest.mark.timeout(SECONDS + 600)
def test_streaming_to_two_hundred_pages(own_web, alice):
    server, url = own_web
    model = ready_model(alice)
    experiments = [Experiment.objects.create(owner=alice, model=model, recipe="prune", status="running").pk
                   for _ in range(JOBS)]
    figures = asyncio.run(_stream(url.replace("http", "ws"), _cookie(alice), experiments, server.pid))
    FIGURES["stream"] = figures
    print({k: v for k, v in figures.items() if k != "errors"}, figures["errors"][:5])


def _submit_all(url: str, tokens: list[str], model_ids: list[int], *, read_only: bool = False
                ) -> tuple[list[float], list[str]]:
    """Each user's 100 submits, the users at once; `read_only`: the same burst of the cheapest authenticated read
    (GET one's model), the floor of any API call here."""
    latencies, failures, lock = [], [], threading.Lock()

    def submit(token: str, model_id: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        for _ in range(SUBMITS_EACH):
            began = time.perf_counter()
            if read_only:
                response = session.get(f"{url}/api/models/{model_id}/", timeout=60)
            else:
                response = session.post(f"{url}/api/experiments/", timeout=60,
                                        json={"model": model_id, "recipe": "quantize", "config": {}})
            took = time.perf_counter() - began
            with lock:
                latencies.append(took)
                if response.status_code != (200 if read_only else 201):
                    failures.append(f"{response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=submit, args=pair) for pair in zip(tokens, model_ids, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures


def _cpu_by_part(web_pid: int) -> dict[str, float]:
    """CPU seconds so far of the web server's processes, PostgreSQL's and Redis's, and this (client) process."""
    def used(processes_) -> float:
        total = 0.0
        for process in processes_:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
        return total
    web = psutil.Process(web_pid)
    everyone = list(psutil.process_iter(["name"]))
    return {"web": used([web, *web.children(recursive=True)]),
            "postgres": used(p for p in everyone if (p.info["name"] or "").startswith("postgres")),
            "redis": used(p for p in everyone if (p.info["name"] or "").startswith("redis")),
            "clients": used([psutil.Process()])}


@pytest.mark.timeout(1200)
def test_a_burst_of_a_thousand_submits(own_web, tmp_path):
    server, url = own_web
    users = [get_user_model().objects.create_user(f"user{i}") for i in range(USERS)]
    tokens = [AuthToken.objects.create(user)[1] for user in users]
    model_ids = [ready_model(user).pk for user in users]
    claims = tmp_path / "claims.jsonl"
    floor, _ = _submit_all(url, tokens, model_ids, read_only=True)  # the baseline, measured in the same run
    cpu_before = _cpu_by_part(server.pid)
    began = time.perf_counter()
    latencies, failures = _submit_all(url, tokens, model_ids)
    burst_s = time.perf_counter() - began
    cpu = {part: seconds - cpu_before.get(part, 0.0) for part, seconds in _cpu_by_part(server.pid).items()}
    # Then the workers' stand-ins, with the queue at its longest: whose jobs come first is the scheduler's doing.
    drains = [processes.start([sys.executable, str(BENCH / "load_drain.py"), str(claims), "20"],
                              tmp_path / f"drain-{i}.log") for i in range(3)]
    try:
        began = time.perf_counter()
        wait_until(lambda: not Experiment.objects.filter(status__in=("queued", "running")).exists(), timeout=600,
                   interval=1, what="every experiment claimed and finished")
        drained_s = time.perf_counter() - began
    finally:
        for drain in drains:
            processes.stop(drain)
    records = [json.loads(line) for line in claims.read_text().splitlines()]
    taken = [r for r in records if r["attempt"]]
    owner = dict(Experiment.objects.values_list("pk", "owner__username"))
    order = [owner[r["id"]] for r in sorted(taken, key=lambda r: r["t"])]
    per_experiment = Counter(r["id"] for r in taken)
    streak = longest = 1
    for before, after in zip(order, order[1:], strict=False):
        streak = streak + 1 if after == before else 1
        longest = max(longest, streak)
    ms = [1000 * value for value in latencies]
    FIGURES["burst"] = {
        "submits": len(ms), "failures": failures, "p50": statistics.median(ms), "p95": _percentile(ms, 0.95),
        "max": max(ms), "floor_p50": statistics.median(floor) * 1000, "floor_p95": _percentile(floor, 0.95) * 1000,
        "burst_s": burst_s, "drained_s": drained_s, "experiments": len(owner), "cpu": cpu,
        "claimed_once": sum(1 for count in per_experiment.values() if count == 1),
        "claimed_twice": sum(1 for count in per_experiment.values() if count > 1),
        "duplicate_deliveries": len(records) - len(taken), "first_20_users": len(set(order[:20])),
        "longest_streak": longest,
        "succeeded": Experiment.objects.filter(status="succeeded").count()}
    print({k: v for k, v in FIGURES["burst"].items() if k != "failures"}, failures[:3])


def test_write_results():
    if not {"stream", "burst"} <= FIGURES.keys():
        pytest.skip("run the whole file")
    s, b = FIGURES["stream"], FIGURES["burst"]
    growth = (s["rss_after"] - s["rss_before"]) / s["rss_before"]
    rows = [
        f"| event latency, {JOBS} jobs at {PER_SECOND:g} events/s, {PAGES} open pages, {SECONDS} s | p50 "
        f"{s['p50']:.1f} ms, p95 {s['p95']:.1f} ms, max {s['max']:.0f} ms ({s['receipts']:,} of {s['expected']:,} "
        f"receipts) | p95 ≤ 250 ms | {_met(s['p95'] <= 250 and s['receipts'] == s['expected'])} |",
        f"| web server memory (RSS) from all pages open to the end | {s['rss_before']:.0f} → {s['rss_after']:.0f} MB "
        f"({100 * growth:+.1f}%) | < 10% | {_met(growth < 0.10)} |",
        f"| errors while streaming (lost connections or events, emitters failing) | {len(s['errors'])} | 0 | "
        f"{_met(not s['errors'])} |",
        f"| submit latency, {USERS} users × {SUBMITS_EACH} at once over HTTP | p50 {b['p50']:.1f} ms, p95 "
        f"{b['p95']:.1f} ms, max {b['max']:.0f} ms ({b['submits']} submits in {b['burst_s']:.1f} s, "
        f"{len(b['failures'])} refused; web CPU {1000 * b['cpu']['web'] / b['submits']:.1f} ms a submit) | "
        f"p95 < 100 ms | {_met(b['p95'] < 100 and not b['failures'])} |",
        f"| baseline: the same burst of the cheapest authenticated read (GET a model) | p50 {b['floor_p50']:.1f} ms, "
        f"p95 {b['floor_p95']:.1f} ms; submit ÷ read at p95: {b['p95'] / b['floor_p95']:.2f}× | — | — |",
        f"| claimed exactly once (3 drain processes; {b['duplicate_deliveries']} deliveries found nothing to claim) | "
        f"{b['claimed_once']} of {b['experiments']}, {b['claimed_twice']} twice; {b['succeeded']} finished in "
        f"{b['drained_s']:.1f} s | all once | {_met(b['claimed_once'] == b['experiments'] == USERS * SUBMITS_EACH)} |",
        f"| users interleaved: users among the first 20 claims; longest run of one user's claims | "
        f"{b['first_20_users']} of {USERS}; {b['longest_streak']} | all {USERS}; ≤ 2 × slots | "
        f"{_met(b['first_20_users'] == USERS and b['longest_streak'] <= 4)} |",
    ]
    text = "\n".join(["| what | measured | target | met |", "|---|---|---|---|", *rows])
    print(text)
    write_results("Load", "Real web server (one Uvicorn), PostgreSQL and Redis; emitters are processes using the "
                  "worker's EventBridge; pages are WebSocket clients in one process; the burst's claims are made by "
                  "bench/load_drain.py through the product's claim, each job finishing at once. Everything on the "
                  f"same machine: {_machine()}.\n\n{text}\n")


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _machine() -> str:
    return f"{cpu_name()}, {cpu_count()} cores, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d')}"
