"""Whether the other hosts of a multi-host job (optimizers.training.hosts) are still there.

A host that leaves the job on its own says so in the job's store. One whose processes are killed, or whose machine
loses power, says nothing, and the first host's replicas could wait for it in a collective until COLLECTIVE_TIMEOUT,
or the first host not notice it at all between rounds. So each further host beats: a thread adds 1 to its counter in
the store every BEAT_S for as long as it is in the job. The first host reads the counters as often and times, by its
own clock, when each last went up (the machines' clocks differ; a counter needs none): a host whose counter stood
still for HOST_SILENT_S has stopped answering. Each thread has a store connection of its own: a store client is not
shared between threads.
"""
import contextlib
import math
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import torch.distributed as dist

BEAT_S = 1.0
HOST_SILENT_S = 30.0  # read at each check, not bound at import: the tests shorten it


def _connect(address: str, port: int, timeout_s: float) -> dist.TCPStore:
    return dist.TCPStore(address, port, is_master=False, wait_for_workers=False, timeout=timedelta(seconds=timeout_s))


def _key(node: int) -> str:
    return f"alive/{node}"


@contextlib.contextmanager
def beating(address: str, port: int, node: int, timeout_s: float) -> Iterator[None]:
    """`with beating(...)`: this further host beats in the job's store until the block ends."""
    store = _connect(address, port, timeout_s)
    stopped = threading.Event()

    def beat() -> None:
        try:
            while not stopped.is_set():
                store.add(_key(node), 1)
                stopped.wait(BEAT_S)
        except RuntimeError:  # the store is gone with the first host's job: nobody is listening any more
            pass

    thread = threading.Thread(target=beat, name=f"slimforge-beat-{node}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join(timeout=2 * BEAT_S)  # a beat stuck on a vanished store must not hold the host up: it is a daemon


class Listening:
    """The first host's side: when each other host (nodes 1 .. count - 1) was last heard, by this host's clock."""

    def __init__(self, address: str, port: int, count: int, timeout_s: float) -> None:
        self.count = count
        self._store = _connect(address, port, timeout_s)
        self._counts = dict.fromkeys(range(1, count), 0)
        # When a rise was read, and when the read before it was: the beat itself came between the two.
        self._heard_at: dict[int, float] = {}  # a host is timed from its first beat on (or from expect_all)
        self._beat_after: dict[int, float] = {}
        self._read_at = time.monotonic()
        self._lock = threading.Lock()  # the watcher's thread reads what the listening thread writes
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="slimforge-listen", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        try:
            while not self._stopped.is_set():
                counts = {node: self._store.add(_key(node), 0) for node in self._counts}
                now = time.monotonic()
                with self._lock:
                    for node, count in counts.items():
                        if count != self._counts[node]:
                            self._counts[node], self._heard_at[node] = count, now
                            self._beat_after[node] = self._read_at
                    self._read_at = now
                self._stopped.wait(BEAT_S)
        except RuntimeError:  # the store closed: the job is ending
            pass

    def expect_all(self) -> None:
        """Every host has joined: one that has not beaten yet is timed from now."""
        now = time.monotonic()
        with self._lock:
            for node in self._counts:
                self._heard_at.setdefault(node, now)

    def silent_hosts(self) -> list[tuple[int, float]]:
        """(node, seconds it has been silent) of each host that stopped answering, by HOST_SILENT_S."""
        # Silence counts up to the last read only: a listener that could not run for a while (this process busy)
        # has heard nothing, which says nothing of the others.
        with self._lock:
            read_at, heard = self._read_at, sorted(self._heard_at.items())
        return [(node, read_at - heard_at) for node, heard_at in heard if read_at - heard_at > HOST_SILENT_S]

    def silent(self) -> str | None:
        """Which host stopped answering, if one did, in words."""
        silent = self.silent_hosts()
        if not silent:
            return None
        node, _ = silent[0]
        return (f"host {node + 1} of {self.count} stopped answering: nothing from it for {HOST_SILENT_S:.0f} s (its "
                "worker or machine may have died)")

    def heard_all_since(self, moment: float) -> bool:
        """Whether every other host surely beat after `moment` (time.monotonic()): all of them were alive then."""
        with self._lock:
            return all(self._beat_after.get(node, -math.inf) >= moment for node in self._counts)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=2 * BEAT_S)
