"""make test's parallel processes (pytest-xdist): how many, and that each takes names of its own."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from launcher.main import _parallel
from tests.paths import REPO_ROOT

NAMES = ("SLIMFORGE_REDIS_PREFIX", "SLIMFORGE_DEFAULT_QUEUE", "SLIMFORGE_VAR_DIR")


def test_one_process_per_core_at_most_four(monkeypatch):
    for cores, expected in ((1, []), (2, ["-n", "2", "--dist", "loadfile"]), (16, ["-n", "4", "--dist", "loadfile"])):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert _parallel({}) == expected
    assert _parallel({"SLIMFORGE_TEST_PROCESSES": "1"}) == []
    assert _parallel({"SLIMFORGE_TEST_PROCESSES": "0"}) == []
    assert _parallel({"SLIMFORGE_TEST_PROCESSES": "8"})[:2] == ["-n", "8"]


@pytest.mark.parametrize("value", ["two", "-1", "65", "1.5"])
def test_a_wrong_number_of_processes_is_refused_by_name(value):
    with pytest.raises(SystemExit, match="SLIMFORGE_TEST_PROCESSES must be a number of processes"):
        _parallel({"SLIMFORGE_TEST_PROCESSES": value})


PROBE = """
import json, os, pytest

@pytest.mark.parametrize("n", range(6))
def test_names(n):
    path = os.path.join(os.environ["NAMES_OUT"], os.environ["PYTEST_XDIST_WORKER"] + ".json")
    with open(path, "w") as out:
        json.dump({name: os.environ[name] for name in %r}, out)
"""


def test_parallel_processes_never_share_a_queue_a_redis_prefix_or_a_var_folder(tmp_path):
    """Without tests.testenv's care, each xdist process inherits its controller's names: one process's worker would
    take the other's tasks, whose rows are in another test database."""
    probe = tmp_path / "test_names_probe.py"
    probe.write_text(textwrap.dedent(PROBE % (NAMES,)))
    out = tmp_path / "names"
    out.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_XDIST")}
    env["NAMES_OUT"] = str(out)
    run = subprocess.run([sys.executable, "-m", "pytest", "-c", str(REPO_ROOT / "pyproject.toml"), "-q",
                          "-p", "no:cacheprovider", "-n", "2", "--dist", "load", str(probe)],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    seen = [json.loads(path.read_text()) for path in sorted(out.glob("gw*.json"))]
    assert len(seen) == 2, "both processes ran a test"
    for name in NAMES:
        values = {names[name] for names in seen}
        assert len(values) == 2, f"{name} is shared: {values}"
        assert os.environ[name] not in values, f"{name} is this process's"
