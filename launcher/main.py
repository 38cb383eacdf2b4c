"""Start Slimforge on one machine, or run its tests against the same servers.

    python -m launcher run               servers, migrations, the admin user, Uvicorn, the Celery workers
    python -m launcher worker [OPTIONS]  only the Celery workers, joining the Slimforge of DATABASE_URL and
                                         REDIS_URL (another machine's): one per GPU, or one CPU worker
    python -m launcher test [-- ARGS]    servers, then pytest -m "not slow and not faults" ARGS (a later -m wins)
    python -m launcher manage [-- ARGS]  servers, then manage.py ARGS (createsuperuser, shell, ...)
    python -m launcher servers           servers only: prints their URLs, runs until Ctrl-C

PostgreSQL and Redis are the embedded ones (launcher.postgres, launcher.redis_server; data under
SLIMFORGE_VAR_DIR or var/) unless DATABASE_URL / REDIS_URL are set. Servers this process started stop
when it ends; servers that another launcher runs on the same var folder are used and left alone. Django
is not imported here: its settings read DATABASE_URL on import, so the servers come first.

`worker` options (launcher.workers says how a machine's GPUs become workers and queues):
    --gpus-per-worker N   GPUs per worker process (a data-parallel group), 1 by default
    --cpu-worker          a CPU worker too (by default only on a machine without GPUs)
    --concurrency N       jobs the CPU worker runs at once (GPU workers run one each), 1 by default
    --queues A,B          more queues every worker serves
    --no-shared-queue     serve only the device shapes' queues, not the shared one (inspections, datasets,
                          experiments that ask for any device)
    --host NAME           the host part of the workers' names (default: this machine's host name)
    --plan                print the workers as JSON and exit
The GPUs are CUDA_VISIBLE_DEVICES' when it is set, else all that nvidia-smi lists.
"""
import argparse
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from launcher import bubblewrap
from launcher.postgres import start_postgres
from launcher.processes import spawn, stop_processes
from launcher.redis_server import start_redis
from launcher.servers import EmbeddedServer, EmbeddedServerError
from launcher.workers import (
    WorkerPlanError,
    WorkerSpec,
    default_shared_queue,
    plan_workers,
    queues_option,
    visible_devices,
)

ROOT = Path(__file__).resolve().parent.parent
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_TIMEOUT = 20.0
URL_VARIABLES = {"postgres": "DATABASE_URL", "redis": "REDIS_URL"}


class StopRequested(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args else ""
    if args[:1] == ["--"]:
        args = args[1:]
    if command not in COMMANDS and command != "worker":
        print(__doc__, file=sys.stderr)
        return 2
    if command == "worker":  # on another machine: it joins servers that run elsewhere and starts none
        return worker(args)
    var_dir = Path(os.environ.get("SLIMFORGE_VAR_DIR") or ROOT / "var").resolve()
    servers: list[EmbeddedServer] = []
    _on_stop_signals(_raise_stop)
    try:
        env = child_env(var_dir, servers)
        code = COMMANDS[command](env, args, servers)
        return code if code >= 0 else 128 - code  # killed by signal N: the shell's 128 + N
    except StopRequested:
        return 0
    except EmbeddedServerError as error:
        print(f"slimforge: {error}", file=sys.stderr)
        return 1
    finally:
        _on_stop_signals(signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        stop_processes([(s.process, s.stop_signal) for s in servers if s.process], timeout=STOP_TIMEOUT)


def child_env(var_dir: Path, servers: list[EmbeddedServer]) -> dict[str, str]:
    """The environment of every child: server URLs (starting embedded servers where none is given)."""
    env = dict(os.environ)
    missing = [name for name, variable in URL_VARIABLES.items() if not env.get(variable)]
    if missing:
        with _startup_lock(var_dir):
            for name in missing:
                server = (start_postgres if name == "postgres" else start_redis)(var_dir)
                servers.append(server)
                env[URL_VARIABLES[name]] = server.url
                _say(f"{name}: {'started' if server.process else 'already running'} under {var_dir} "
                     f"(log: {server.log_path})")
    env["SLIMFORGE_VAR_DIR"] = str(var_dir)
    env.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run(env: dict[str, str], args: list[str], servers: list[EmbeddedServer]) -> int:
    port = _port(env)
    bubblewrap.for_run(env, _say)
    for step in (["migrate", "--noinput"], ["ensure_admin"]):
        code = subprocess.run([sys.executable, str(ROOT / "manage.py"), *step], env=env, cwd=ROOT).returncode
        if code != 0:
            print(f"slimforge: manage.py {step[0]} failed (exit code {code})", file=sys.stderr)
            return code
    try:
        workers, _ = plan_workers(visible_devices(env), shared_queue=default_shared_queue(env),
                                  extra_queues=queues_option(env.get("SLIMFORGE_QUEUES", "")))
    except WorkerPlanError as error:
        print(f"slimforge: {error}", file=sys.stderr)
        return 2
    commands = {
        # Uvicorn hands the body on as it arrives, so webapp.body_limit can refuse it before anything buffers it.
        # Several processes: Django runs each process's synchronous views one at a time.
        "uvicorn": (["-m", "uvicorn", "webapp.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                     "--workers", _web_workers(env), "--timeout-graceful-shutdown", "10"], env),
    } | {f"celery {spec.name}": (spec.celery_args(), env | spec.env) for spec in workers}
    children: dict[str, subprocess.Popen] = {}
    try:
        for spec in workers:
            _announce(spec)
        for name, (command, child_environment) in commands.items():
            children[name] = spawn([sys.executable, *command], env=child_environment, cwd=ROOT)
        watched = children | {server.name: server.process for server in servers if server.process}
        return _watch(watched, ready=lambda: _port_open(port), announce=lambda: _say(_banner(port)))
    finally:
        _on_stop_signals(signal.SIG_IGN)
        stop_processes([(process, signal.SIGTERM) for process in children.values()], timeout=STOP_TIMEOUT)


def worker(args: list[str]) -> int:
    """`python -m launcher worker`: the Celery workers of this machine, for the Slimforge whose database and broker
    DATABASE_URL and REDIS_URL name; they run until a stop signal, and a worker that dies stops the rest."""
    try:
        options = _worker_options(args)
        env = dict(os.environ)
        workers, left_over = plan_workers(
            visible_devices(env), gpus_per_worker=options.gpus_per_worker,
            shared_queue=None if options.no_shared_queue else default_shared_queue(env),
            cpu_worker=True if options.cpu_worker else None, cpu_concurrency=options.concurrency,
            extra_queues=queues_option(options.queues), host=options.host)
    except WorkerPlanError as error:
        print(f"slimforge: {error}", file=sys.stderr)
        return 2
    if left_over:
        print(f"slimforge: GPUs {','.join(left_over)} are left out: they make no group of "
              f"{options.gpus_per_worker} (--gpus-per-worker)", file=sys.stderr)
    if options.plan:
        print(json.dumps([spec.describe() for spec in workers], indent=2))
        return 0
    missing = [variable for variable in URL_VARIABLES.values() if not env.get(variable)]
    if missing:
        print(f"slimforge: a worker joins a Slimforge that runs elsewhere: set {' and '.join(missing)} (on the web's "
              "machine, `python -m launcher servers` prints the embedded servers' URLs)", file=sys.stderr)
        return 2
    env.setdefault("SLIMFORGE_VAR_DIR", str(ROOT / "var"))
    env.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    env["PYTHONUNBUFFERED"] = "1"
    bubblewrap.for_run(env, _say)
    _on_stop_signals(_raise_stop)
    return _run_workers(workers, env)


def _run_workers(workers: list[WorkerSpec], env: dict[str, str]) -> int:
    children: dict[str, subprocess.Popen] = {}
    try:
        for spec in workers:
            _announce(spec)
            children[spec.name] = spawn([sys.executable, *spec.celery_args()], env=env | spec.env, cwd=ROOT)
        return _watch(children)
    except StopRequested:
        return 0
    finally:
        _on_stop_signals(signal.SIG_IGN)
        stop_processes([(process, signal.SIGTERM) for process in children.values()], timeout=STOP_TIMEOUT)


def _announce(spec: WorkerSpec) -> None:
    _say(f"worker {spec.name}: GPUs {','.join(spec.devices) or 'none'}, queues {','.join(spec.queues)}")


def _worker_options(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m launcher worker",
        description="The Celery workers of this machine, for the Slimforge whose database and broker DATABASE_URL "
                    "and REDIS_URL name: one per GPU (CUDA_VISIBLE_DEVICES', else all nvidia-smi lists), or one CPU "
                    "worker.")
    parser.add_argument("--gpus-per-worker", type=int, default=1, metavar="N",
                        help="GPUs per worker process, a data-parallel group (default 1)")
    parser.add_argument("--cpu-worker", action="store_true", help="a CPU worker too (default: only without GPUs)")
    parser.add_argument("--concurrency", type=int, default=1, metavar="N",
                        help="jobs the CPU worker runs at once; GPU workers run one each (default 1)")
    parser.add_argument("--queues", default="", metavar="A,B", help="more queues every worker serves")
    parser.add_argument("--no-shared-queue", action="store_true",
                        help="serve only the device shapes' queues, not the shared one")
    parser.add_argument("--plan", action="store_true", help="print the workers as JSON and exit")
    parser.add_argument("--host", default="%h", metavar="NAME",
                        help="the host part of the workers' names (default: this machine's host name)")
    try:
        return parser.parse_args(args)
    except SystemExit as exit_:
        if not exit_.code:  # --help
            raise
        raise WorkerPlanError("see the usage above") from exit_  # argparse printed why


def _web_workers(env: dict[str, str]) -> str:
    value = env.get("SLIMFORGE_WEB_WORKERS", "2")
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise SystemExit(f"slimforge: SLIMFORGE_WEB_WORKERS must be a number of processes from 1 to 64, not {value!r}")
    return value


def test(env: dict[str, str], args: list[str], servers: list[EmbeddedServer]) -> int:
    # The benchmarks (slow) and the fault scenarios (faults: make test-faults) run apart; a later -m in args wins.
    command = [sys.executable, "-m", "pytest", "-m", "not slow and not faults", *_parallel(env), *args]
    return _foreground(command, bubblewrap.for_tests(env, _say))


def _parallel(env: dict[str, str]) -> list[str]:
    """pytest-xdist options: files spread over processes, each with its own test database, Redis prefix, queue,
    worker and var folder (tests.testenv). A job's sandbox uses one thread, so while one test waits for its job the
    other cores would idle. At most 4: each process brings its own worker, web server and browser. A later -n in
    the arguments wins (-n 0: one process)."""
    value = env.get("SLIMFORGE_TEST_PROCESSES", "")
    if value and not (value.isdigit() and int(value) <= 64):
        raise SystemExit(f"slimforge: SLIMFORGE_TEST_PROCESSES must be a number of processes from 0 to 64, "
                         f"not {value!r}")
    processes = int(value) if value else min(os.cpu_count() or 1, 4)
    return ["-n", str(processes), "--dist", "loadfile"] if processes > 1 else []


def manage(env: dict[str, str], args: list[str], servers: list[EmbeddedServer]) -> int:
    return _foreground([sys.executable, str(ROOT / "manage.py"), *args], env)


def servers_only(env: dict[str, str], args: list[str], servers: list[EmbeddedServer]) -> int:
    for server in servers:
        _say(f"export {URL_VARIABLES[server.name]}='{server.url}'")
    _say("Ctrl-C stops the servers this process started.")
    return _watch({server.name: server.process for server in servers if server.process})


COMMANDS: dict[str, Callable[[dict[str, str], list[str], list[EmbeddedServer]], int]] = {
    "run": run, "test": test, "manage": manage, "servers": servers_only,
}


def _foreground(argv: list[str], env: dict[str, str]) -> int:
    """Run a child in our process group: a Ctrl-C on the terminal reaches it directly (so it is not passed
    on a second time); SIGTERM and SIGHUP are passed on. Its exit code is ours."""
    process = spawn(argv, env=env, cwd=ROOT, own_group=False)

    def pass_on(signum: int, frame: object) -> None:
        if signum != signal.SIGINT:
            process.send_signal(signum)

    _on_stop_signals(pass_on)
    return process.wait()


def _watch(processes: dict[str, subprocess.Popen], ready: Callable[[], bool] = lambda: True,
           announce: Callable[[], None] = lambda: None) -> int:
    """Wait for a stop signal; if a child ends first, report it and return a failing exit code."""
    announced = False
    while True:
        for name, process in processes.items():
            code = process.poll()
            if code is not None:
                _say(f"slimforge: {name} exited unexpectedly (exit code {code}); stopping the rest")
                return code if code > 0 else 1
        if not announced and ready():
            announce()
            announced = True
        time.sleep(0.5)


def _banner(port: int) -> str:
    return (f"\nSlimforge is running at http://127.0.0.1:{port}/\n"
            "Log in as admin, with the password printed once when the user was created (or the one\n"
            "in SLIMFORGE_ADMIN_PASSWORD then). More users:\n"
            "  .venv/bin/python -m launcher manage createsuperuser\n"
            "Ctrl-C stops everything.\n")


def _port(env: dict[str, str]) -> int:
    raw = env.get("PORT") or "8000"
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise EmbeddedServerError(f"PORT must be a TCP port number; got {raw!r}")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", int(raw)))
        except OSError as error:
            raise EmbeddedServerError(f"Port {raw} on 127.0.0.1 is not free ({error}); set PORT") from None
    return int(raw)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def _startup_lock(var_dir: Path) -> Iterator[None]:
    """Two launchers on one var folder must not both start servers on it."""
    var_dir.mkdir(parents=True, exist_ok=True)
    with open(var_dir / ".launcher.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _on_stop_signals(handler: Callable | int) -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)


def _raise_stop(signum: int, frame: object) -> None:
    raise StopRequested(signal.Signals(signum).name)


def _say(message: str) -> None:
    try:
        print(message, flush=True)
    except OSError:
        pass  # a closed terminal or pipe must not stop the servers or their shutdown

