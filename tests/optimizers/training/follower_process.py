"""A further host of a multi-host job as its own process (optimizers.training.follower), as another machine's sandbox
child would be: for the tests and the bench that play two hosts on one machine over the loopback."""
import json
import subprocess
import sys

from optimizers.training.hosts import Hosts
from tests.paths import REPO_ROOT

SECRET = "ab" * 32
_SERVE = """
import json, sys
from optimizers.reporters import NullReporter
from optimizers.training.follower import serve
from optimizers.training.hosts import Hosts
print(json.dumps(serve(Hosts(**json.loads(sys.argv[1])), NullReporter(), sys.argv[2])), flush=True)
"""


def loopback_hosts(node: int, port: int, wait_s: float = 60, secret: str = SECRET) -> Hosts:
    return Hosts(count=2, node=node, address="127.0.0.1", port=port, interface="lo", wait_s=wait_s, secret=secret)


def start_follower(hosts: Hosts, folder, cpus: str = "", **popen) -> subprocess.Popen:
    """The host runs serve() and prints its answer as JSON; `cpus` (as taskset lists them) pins it."""
    pinned = ["taskset", "--cpu-list", cpus] if cpus else []
    return subprocess.Popen([*pinned, sys.executable, "-c", _SERVE, json.dumps(hosts.__dict__), str(folder)],
                            cwd=REPO_ROOT, **popen)
