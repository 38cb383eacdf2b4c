"""Red team, from inside a model: code running in the job sandbox tries to reach what is not its own.

A model is code. These tests run an attacker's payload exactly where a model's code runs (tasks.sandbox's
start_sandboxed: the same bubblewrap command, environment and limits as every job) and check with a canary that
each attempt failed: the file, variable or server the payload looks for is real and reachable from outside.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tasks.sandbox as sandbox
from optimizers.job_spec import JobSpec
from tasks import isolation
from tasks.sandbox import BoundedLog, Limits, SandboxError, run_sandboxed, start_sandboxed
from tests.modelfiles import linear_model, save_scripted

pytestmark = pytest.mark.skipif(not isolation.detect().active, reason="needs bubblewrap (the strongest sandbox)")
CANARY = "slimforge-canary-7f3a9c"
REPO = Path(isolation.__file__).resolve().parent.parent


def run_payload(tmp_path, payload: str, *, limits: Limits | None = None, timeout: float = 60,
                network: bool = False) -> tuple[int, dict, str]:
    """(exit code, the JSON the payload printed last, its stderr) of `payload` run in a job's sandbox (a multi-host
    job's, with the host's network, given `network`)."""
    job = tmp_path / "job"
    job.mkdir()
    (job / "payload.py").write_text(textwrap.dedent(payload))
    process, sandboxed = start_sandboxed([sys.executable, str(job / "payload.py")], workdir=str(job), writable=[],
                                         limits=limits or Limits(wall_seconds=60, memory_mb=2048),
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, network=network)
    out, err = process.communicate(timeout=timeout)
    lines = out.decode().strip().splitlines()
    return sandboxed.signal_of(process.returncode), json.loads(lines[-1]) if lines else {}, err.decode()


def test_files_outside_the_job_folder_are_not_there(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(CANARY)  # a file of the worker's, readable from outside
    repo_secret = str(REPO / "var")  # media, the secret key, the embedded servers' data
    _, result, _ = run_payload(tmp_path, f"""
        import json, os
        found = {{}}
        for path in ({str(secret)!r}, "/etc/passwd", "/etc/shadow", "/root/.bashrc", "/root/.ssh", {repo_secret!r},
                     "/var/run/postgresql", "/var/lib/postgresql", "/home", {str(REPO / "webapp")!r}):
            try:
                found[path] = open(path).read()[:40] if os.path.isfile(path) else os.listdir(path)
            except OSError as error:
                found[path] = type(error).__name__
        print(json.dumps(found))
    """)
    assert result[str(secret)] == "FileNotFoundError"
    assert all(value in ("FileNotFoundError", "PermissionError") for value in result.values()), result


def test_the_workers_environment_and_processes_are_out_of_sight(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIMFORGE_TEST_SECRET", CANARY)  # as DATABASE_URL is in the worker's environment
    _, result, _ = run_payload(tmp_path, f"""
        import json, os
        seen = []
        for pid in (name for name in os.listdir("/proc") if name.isdigit()):
            try:
                seen.append(open(f"/proc/{{pid}}/environ", "rb").read().decode(errors="replace"))
            except OSError:
                pass
        print(json.dumps({{"pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                          "leaked": any({CANARY!r} in text for text in seen) or {CANARY!r} in str(os.environ),
                          "uid": os.getuid(), "euid": os.geteuid()}}))
    """)
    assert not result["leaked"]
    assert max(result["pids"]) < 10  # a PID namespace of its own: only the sandbox's few processes
    assert result["uid"] != 0 and result["euid"] != 0


@pytest.mark.parametrize(("host", "port"), [("127.0.0.1", 5432), ("127.0.0.1", 6379)])
def test_no_network_reaches_the_database_or_redis(tmp_path, host, port):
    with socket.create_connection((host, port), timeout=5):
        pass  # the canary: the server is there, from outside the sandbox
    _, result, _ = run_payload(tmp_path, f"""
        import json, socket
        s = socket.socket()
        s.settimeout(5)
        print(json.dumps({{"connect": s.connect_ex(({host!r}, {port}))}}))
    """)
    assert result["connect"] != 0


def test_the_only_network_is_its_own_loopback(tmp_path):
    assert len(socket.if_nameindex()) > 1  # the canary: the worker's machine has more than a loopback
    _, result, _ = run_payload(tmp_path, """
        import json, socket
        print(json.dumps({"interfaces": [name for _, name in socket.if_nameindex()]}))
    """)
    assert result["interfaces"] == ["lo"]  # the internet, the host's interfaces: none of them is there


def test_a_multi_host_jobs_sandbox_has_the_hosts_network_and_nothing_else_of_the_workers(tmp_path, monkeypatch):
    """The one exception, by the operator's consent (SLIMFORGE_WORKER_HOST_ADDRESS): the interfaces are the host's,
    while the worker's files, environment and identity stay out of reach."""
    monkeypatch.setenv("SLIMFORGE_TEST_SECRET", CANARY)
    secret = tmp_path / "secret.txt"
    secret.write_text(CANARY)
    _, result, _ = run_payload(tmp_path, f"""
        import json, os, socket
        try:
            found = open({str(secret)!r}).read()
        except OSError as error:
            found = type(error).__name__
        print(json.dumps({{"interfaces": sorted(name for _, name in socket.if_nameindex()), "file": found,
                          "leaked": {CANARY!r} in str(os.environ), "uid": os.getuid()}}))
    """, network=True)
    assert result["interfaces"] == sorted(name for _, name in socket.if_nameindex())
    assert (result["file"], result["leaked"]) == ("FileNotFoundError", False) and result["uid"] != 0


def test_unix_sockets_of_the_servers_are_not_there(tmp_path):
    sockets = [path for path in ("/var/run/postgresql/.s.PGSQL.5432", "/var/run/redis/redis-server.sock")
               if os.path.exists(path)]
    if not sockets:
        pytest.skip("no server listens on a unix socket on this machine")
    _, result, _ = run_payload(tmp_path, f"""
        import json, socket
        results = {{}}
        for path in {sockets!r}:
            s = socket.socket(socket.AF_UNIX)
            results[path] = s.connect_ex(path)
        print(json.dumps(results))
    """)
    assert all(code != 0 for code in result.values()), result


def test_the_syscalls_an_escape_needs_are_denied(tmp_path):
    _, result, _ = run_payload(tmp_path, """
        import ctypes, json
        libc = ctypes.CDLL(None, use_errno=True)
        calls = {"unshare(CLONE_NEWUSER)": lambda: libc.unshare(0x10000000),
                 "ptrace(PTRACE_ATTACH, 1)": lambda: libc.ptrace(16, 1, 0, 0),
                 "mount(tmpfs)": lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None),
                 "setns": lambda: libc.setns(0, 0),
                 "keyctl": lambda: libc.syscall(250, 0, 0, 0, 0)}
        print(json.dumps({name: (call(), ctypes.get_errno()) for name, call in calls.items()}))
    """)
    assert all(code == -1 and errno == 1 for code, errno in result.values()), result  # EPERM from the filter


def test_a_fork_bomb_meets_the_process_limit(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the process limit applies where the worker runs as root and drops to the sandbox's own user")
    _, result, _ = run_payload(tmp_path, """
        import json, os, time
        children, refused = [], None
        for _ in range(2000):
            try:
                pid = os.fork()
            except OSError as error:
                refused = error.strerror
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
        print(json.dumps({"forked": len(children), "refused": refused}))
    """, limits=Limits(wall_seconds=60, memory_mb=2048, processes=64))
    assert result["refused"] and result["forked"] < 64


def test_a_file_past_the_size_limit_is_cut_off(tmp_path):
    _, result, _ = run_payload(tmp_path, """
        import json, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills it: either way the file stops
        written = 0
        try:
            with open("/tmp/big.bin", "wb") as file:
                for _ in range(64):
                    file.write(b"x" * 1024 * 1024)
                    file.flush()
                    written += 1
        except OSError as error:
            print(json.dumps({"written_mb": written, "error": error.strerror}))
    """, limits=Limits(wall_seconds=60, memory_mb=2048, file_mb=8))
    assert result["written_mb"] <= 8 and result["error"] == "File too large"


def test_a_flood_on_stderr_is_kept_bounded_and_the_job_still_answers(tmp_path, monkeypatch):
    """A model that prints without end: the worker keeps the first and last 64 KB, counts the rest, and lives on."""
    save_scripted(linear_model(), tmp_path / "mlp.pt")
    spec = JobSpec.build(action="inspect", model_path=str(tmp_path / "mlp.pt"), input_shape=[1, 64],
                         input_dtype="float32")
    # The flood comes from the job's own process: sitecustomize runs in every Python that starts with it on its path
    # (the folder is the job's own, beside its model, so the sandbox shows it).
    flood = tmp_path / "flood"
    flood.mkdir()
    (flood / "sitecustomize.py").write_text(
        "import os\nfor _ in range(200):\n    os.write(2, b'x' * 1024 * 1024)\nraise SystemExit('flooded')\n")
    original = sandbox._child_env
    monkeypatch.setattr(sandbox, "_child_env", lambda limits: {
        **original(limits), "PYTHONPATH": f"{flood}:{original(limits)['PYTHONPATH']}"})
    with pytest.raises(SandboxError, match="flooded"):  # its last words, from the tail that was kept
        run_sandboxed(spec, limits=Limits(wall_seconds=60, memory_mb=2048), on_event=lambda event: None)


def test_the_kept_log_is_its_first_and_last_bytes_and_a_count():
    log = BoundedLog()
    for index in range(300):
        log.add(f"{index:04d}".encode() * 256)  # 1 KB a line
    text = log.text()
    assert text.startswith("0000") and text.endswith("0299" * 256)
    assert f"[... {300 * 1024 - 2 * BoundedLog.KEEP:,} bytes dropped ...]" in text
