"""The hosts of a multi-host job: several workers, each lending its devices, train as one DDP group.

The job runs on the first host (node 0), as any job does; it alone loads the model, runs the recipe and reports.
The other hosts run only training replicas: each of their jobs (optimizers.training.follower) joins the first host's
TCP store (torch.distributed's, the one torchrun's c10d rendezvous uses) and waits there for rounds. Each time the
recipe trains on replicas (optimizers.training.distributed.run_ranks), the first host announces a round in the store,
with the work every replica runs (model, data, settings and hooks, as torch.save writes them, sealed with the job's
secret: optimizers.training.sealed); each host starts its share of the ranks, which meet through the same store under
the round's own prefix. Global ranks are node-major, so rank 0, whose events are the job's and which keeps the
result, is always on the first host.

A host that cannot take part writes why under the round's key, which the first host's watcher reads and fails the job
with; a host whose own job fails or is cancelled says it has gone. A host that dies without a word (its processes
killed, its machine off) stops beating (optimizers.training.heartbeats): the first host fails the job once it has heard
nothing from it for HOST_SILENT_S (30 s), in a round or at the next one, rather than wait COLLECTIVE_TIMEOUT in a
collective. A host that joins too late fails the job (SLIMFORGE_HOSTS_WAIT_S); when the first host's job ends, for any
reason, it tells the others to leave, and a host that loses the store leaves on its own.
"""
import contextlib
import dataclasses
import io
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from optimizers.errors import Cancelled, RecipeError, first_line
from optimizers.formats import portable
from optimizers.reporters import Reporter
from optimizers.training import heartbeats, sealed

POLL_S = 0.2
LEAVE_WAIT_S = 5.0  # how long the first host waits for the others to read "finished" before its store closes
COLLECTIVE_TIMEOUT = timedelta(seconds=300)  # a collective waits this long; a silent host fails the job sooner
CHUNK_BYTES = 4 << 20  # the store takes values of at most 8 MiB: the work travels in pieces


@dataclasses.dataclass(frozen=True)
class Hosts:
    """This host's place in the job (the JobSpec's `hosts`, checked there)."""
    count: int
    node: int  # 0: the first host, which runs the job and hosts the store
    address: str  # the first host's address: its store listens there
    port: int
    interface: str  # this host's network interface, the one its ranks' connections use
    wait_s: float  # how long the hosts may take to join
    secret: str  # hex: seals the work in the store, which anyone on the network may read

    @classmethod
    def from_spec(cls, data: dict[str, Any]) -> "Hosts":
        return cls(data["count"], data["node"], data["address"], data["port"], data["interface"], data["wait_s"],
                   data["secret"])

    @property
    def key(self) -> bytes:
        return bytes.fromhex(self.secret)


@dataclasses.dataclass(frozen=True)
class Round:
    """One run of replicas across the hosts: where its ranks meet, and this host's first global rank."""
    index: int
    ranks_per_host: int
    hosts: int
    prefix: str
    chunks: int  # how many pieces its work travels in
    threads: int  # each rank's torch threads, the same on every host

    def first_rank(self, node: int) -> int:
        return node * self.ranks_per_host


class Cluster:
    """This host's connection to the job's store, open for the whole job."""

    def __init__(self, hosts: Hosts, store: dist.TCPStore) -> None:
        self.hosts = hosts
        self.store = store
        self.rounds = 0
        self.listening: heartbeats.Listening | None = None  # the first host's, from listen() to finish()

    # The first host's side.

    def listen(self) -> None:
        """Time the other hosts' beats from now until finish()."""
        self.listening = heartbeats.Listening(self.hosts.address, self.hosts.port, self.hosts.count,
                                              self.hosts.wait_s)

    def silent(self) -> str | None:
        """Which other host stopped answering, in words, if one did."""
        return self.listening.silent() if self.listening is not None else None

    def heard_all_since(self, moment: float) -> bool:
        """Whether every other host was heard after `moment` (time.monotonic()); True when not listening."""
        return self.listening is None or self.listening.heard_all_since(moment)

    def _fail_if_silent(self) -> None:
        if silence := self.silent():
            raise RecipeError(f"the job cannot go on: {silence}")

    def wait_for_hosts(self, report: Reporter) -> None:
        deadline = time.monotonic() + self.hosts.wait_s
        while (joined := self.store.add("joined", 0)) < self.hosts.count - 1:
            if report.cancelled():
                raise Cancelled()
            self._fail_if_silent()  # one that joined and died takes a place no other host can have
            if time.monotonic() > deadline:
                raise RecipeError(
                    f"only {1 + joined} of the {self.hosts.count} hosts this job asks for joined within "
                    f"{self.hosts.wait_s:.0f} s (SLIMFORGE_HOSTS_WAIT_S): the other workers of its shape that take "
                    "multi-host jobs were busy or went offline; run it again, or on fewer hosts")
            time.sleep(POLL_S)
        if self.listening is not None:
            self.listening.expect_all()
        self._fail_if_silent()
        devices = [json.loads(self.store.get(f"host/{node}")) for node in range(1, self.hosts.count)]
        described = ", ".join(f"host {node + 1}: {entry['devices']} {entry['kind']}"
                              for node, entry in enumerate(devices, start=1))
        report.log(f"all {self.hosts.count} hosts joined the job ({described}); they train together over "
                   f"{self.hosts.interface} from {self.hosts.address}:{self.hosts.port}")

    def announce(self, ranks_per_host: int, backend: str, work: Any, threads: int) -> Round:
        """A round on every host: the work as bytes, then its description (the others wait for that key)."""
        self._fail_if_silent()  # one that died between rounds would not come to this one's rendezvous
        buffer = io.BytesIO()
        portable.picklable()
        try:
            torch.save(work, buffer)
        except Exception as error:  # noqa: BLE001 - pickle's errors for an object it cannot carry
            raise RecipeError(f"this recipe's training cannot be sent to the other hosts: {first_line(error)}; "
                              "train it on one host") from error
        index, self.rounds = self.rounds, self.rounds + 1
        work = sealed.seal(self.hosts.key, buffer.getvalue())
        chunks = range(0, len(work), CHUNK_BYTES)
        for number, start in enumerate(chunks):
            self.store.set(f"round/{index}/work/{number}", work[start:start + CHUNK_BYTES])
        self.store.set(f"round/{index}", json.dumps({"ranks": ranks_per_host, "backend": backend,
                                                     "hosts": self.hosts.count, "chunks": len(chunks),
                                                     "threads": threads}))
        return Round(index, ranks_per_host, self.hosts.count, f"round/{index}/ranks/", len(chunks), threads)

    def forget(self, round_: Round) -> None:
        """The round's work leaves the store once it ran (every rank had read it to start): the store is memory."""
        try:
            for number in range(round_.chunks):
                self.store.delete_key(f"round/{round_.index}/work/{number}")
        except RuntimeError:  # the store is gone with the job: nothing is left to free
            pass

    def failure(self, round_: Round) -> str | None:
        """What another host said when it could not take its part in `round_`, or when it left the job, if one did;
        else which host stopped answering, if one did."""
        for node in range(1, round_.hosts):
            for key in (f"round/{round_.index}/failed/{node}", f"gone/{node}"):
                if self.store.check([key]):
                    return f"host {node + 1} of {round_.hosts}: {self.store.get(key).decode()}"
        return self.silent()

    def finish(self) -> None:
        """Tell the other hosts to leave, and give them a moment to read it before the store closes."""
        silent = len(self.listening.silent_hosts()) if self.listening is not None else 0  # they will not read it
        if self.listening is not None:
            self.listening.stop()
        try:
            self.store.set("finished", "1")
            deadline, joined = time.monotonic() + LEAVE_WAIT_S, min(self.store.add("joined", 0), self.hosts.count - 1)
            while self.store.add("left", 0) < joined - silent and time.monotonic() < deadline:
                time.sleep(POLL_S / 4)
        except RuntimeError:  # the store is already gone: nobody is left to tell
            pass

    # The other hosts' side.

    def join(self, devices: int, kind: str) -> None:
        # A join task delivered again (its worker died) finds the job's hosts complete: it is not needed.
        if self.store.add("joined", 1) > self.hosts.count - 1:
            raise RecipeError("the job already has all its hosts; this one is not needed")
        self.store.set(f"host/{self.hosts.node}", json.dumps({"devices": devices, "kind": kind}))

    def next_round(self, report: Reporter) -> tuple[Round, str, bytes] | None:
        """The next round (its round, backend and work), or None once the first host has finished."""
        index = self.rounds
        while True:
            try:
                if self.store.check(["finished"]):
                    self.store.add("left", 1)
                    return None
                if self.store.check([f"round/{index}"]):
                    break
            except RuntimeError as error:  # the first host's job ended without a word: its store is gone
                raise RecipeError(f"lost the first host's store ({first_line(error)}); its job has ended") from error
            if report.cancelled():
                raise Cancelled()
            time.sleep(POLL_S)
        self.rounds += 1
        described = json.loads(self.store.get(f"round/{index}"))
        round_ = Round(index, described["ranks"], described["hosts"], f"round/{index}/ranks/", described["chunks"],
                       described["threads"])
        work = b"".join(self.store.get(f"round/{index}/work/{number}") for number in range(round_.chunks))
        return round_, described["backend"], work

    def unseal(self, work: bytes) -> bytes:
        return sealed.unseal(self.hosts.key, work)

    def fail(self, round_: Round, message: str) -> None:
        self.store.set(f"round/{round_.index}/failed/{self.hosts.node}", message[:2000])

    def gone(self, message: str) -> None:
        """This host leaves the job early (its own job failed or was cancelled): the first host must not wait."""
        try:
            self.store.set(f"gone/{self.hosts.node}", message[:2000])
        except RuntimeError:  # the store is gone too: the first host's job has ended already
            pass


@dataclasses.dataclass(frozen=True)
class OtherHosts:
    """What the first host's watcher asks of the other hosts while a round runs (optimizers.training.distributed)."""
    cluster: Cluster
    round_: Round

    def failure(self) -> str | None:
        return self.cluster.failure(self.round_)

    def heard_all_since(self, moment: float) -> bool:
        return self.cluster.heard_all_since(moment)


_current: Cluster | None = None


def current() -> Cluster | None:
    """The job's cluster while it runs on several hosts; None on one."""
    return _current


def host_count() -> int:
    return _current.hosts.count if _current is not None else 1


def open_store(hosts: Hosts) -> dist.TCPStore:
    """The first host listens; the others connect, retrying until it does or wait_s has passed."""
    try:
        return dist.TCPStore(hosts.address, hosts.port, is_master=hosts.node == 0, wait_for_workers=False,
                             timeout=timedelta(seconds=hosts.wait_s))
    except (RuntimeError, OSError) as error:
        where = f"{hosts.address}:{hosts.port}"
        if hosts.node == 0:
            raise RecipeError(f"the first host could not open the job's store on {where}: {first_line(error)}") \
                from error
        raise RecipeError(f"could not reach the first host's store at {where} within {hosts.wait_s:.0f} s: "
                          f"{first_line(error)}") from error


@contextlib.contextmanager
def joined(hosts: Hosts | None, report: Reporter) -> Iterator[Cluster | None]:
    """`with joined(hosts, report):` the job runs on these hosts (the first host's side), once all have joined; at
    the end, whatever it was, the others are told to leave. Nothing happens for None (a job on one host)."""
    global _current
    if hosts is None:
        yield None
        return
    cluster = Cluster(hosts, open_store(hosts))
    _current = cluster
    try:
        cluster.listen()
        cluster.wait_for_hosts(report)
        yield cluster
    finally:
        _current = None
        cluster.finish()
