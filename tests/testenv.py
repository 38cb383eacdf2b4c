"""Loaded with `-p tests.testenv` before Django's settings are read: the test run's own names.

Each run gets its own Redis key prefix and Celery queue, so a `make run` worker on the same Redis never
takes a test's task, and its own var folder, so test uploads never land in the real media folder.
"""
import atexit
import os
import shutil
import tempfile

RUN_NAME = f"slimforge-test-{os.getpid()}"
# A pytest-xdist process (make test runs several) inherits the names its controlling process took: it takes its own,
# so no worker of one process ever takes another's task, and their files never meet.
PARALLEL = "PYTEST_XDIST_WORKER" in os.environ
for _variable in ("SLIMFORGE_REDIS_PREFIX", "SLIMFORGE_DEFAULT_QUEUE"):
    if PARALLEL or _variable not in os.environ:
        os.environ[_variable] = RUN_NAME
if PARALLEL or "SLIMFORGE_TEST_VAR_DIR" not in os.environ:
    _folder = tempfile.mkdtemp(prefix="slimforge-test-var-")
    atexit.register(shutil.rmtree, _folder, ignore_errors=True)
    os.environ["SLIMFORGE_TEST_VAR_DIR"] = _folder
os.environ["SLIMFORGE_VAR_DIR"] = os.environ["SLIMFORGE_TEST_VAR_DIR"]
os.environ.setdefault("SLIMFORGE_DB_CONN_MAX_AGE", "0")  # no connection outlives a test (teardown drops the db)
os.environ.setdefault("SLIMFORGE_TELEMETRY_MS", "250")  # more points per second for the live-chart tests
os.environ.setdefault("SLIMFORGE_HEARTBEAT_MS", "500")  # the workers page test sees beats and misses quickly
# The fault tests see a lost job queued again within seconds; other tests' hand-made "running" rows end sooner.
os.environ.setdefault("SLIMFORGE_RUN_LOST_AFTER_S", "10")
