"""Processes that train together (DDP ranks): starting them, what each knows of the others, and watching them.

The job's own process coordinates and does not train: it starts one process per rank, forwards the first
rank's events to its reporter, and watches them all. A rank that fails or dies fails the whole group with a
message that names it, and every other rank is killed, so no process is left behind; a cancelled job kills
them too (the last epoch's checkpoint stays, written whole).

On CPU the ranks are forked: they inherit the model, the data and the recipe's hooks (closures over a teacher
that may be an onnxruntime session) without copying them through pickle. CUDA cannot be used in a process forked
after it was initialised, so GPU ranks are spawned and the work they run goes to them through torch.save, one
file for all of it, so the hooks still point at the model's own parameters (pickle keeps shared references). CPU
ranks are spawned the same way once this process's autograd no longer allows a fork (optimizers.training.forking).
The ranks meet through a file store in a private folder (no port to agree on); gloo's own
connections then run over the loopback, which in the job's sandbox is the job's alone. A job on several hosts runs
its rounds of replicas on all of them (optimizers.training.hosts): its ranks meet through the first host's TCP store
instead, over the hosts' network.
"""
import dataclasses
import multiprocessing
import os
import queue
import re
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from optimizers.errors import Cancelled, RecipeError, first_line
from optimizers.events import log_event, metric_event, progress_event, stage_event
from optimizers.formats import portable
from optimizers.reporters import NullReporter, Reporter
from optimizers.training import forking, heartbeats
from optimizers.training.hosts import COLLECTIVE_TIMEOUT, OtherHosts, Round, current

POLL_S = 0.05  # how often the coordinator looks at its ranks and the cancel flag
WORK_FILE = "work.pt"  # a spawned rank's work, written once by the coordinator
STORE_FILE = "rendezvous"
RANK_ERROR_WAIT_S = 2.0  # how long a dead rank's own error message may trail its exit

# What a rank runs: work(group, report) -> the answer the first rank sends back (the others' are dropped).
RankWork = Callable[["RankGroup", Reporter], Any]


@dataclasses.dataclass
class RankGroup:
    """One rank's view of the group: which share of each batch is its own, and the collectives it takes part in.

    Every method is a collective: all ranks call it at the same point, or the group waits.
    """
    rank: int
    world: int
    device: torch.device  # where collectives' tensors live: the rank's GPU under NCCL, the CPU under gloo
    folder: str  # private to the group: the rendezvous file and the first rank's result
    replica_checks: int = 0

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's part of a batch: near-equal contiguous slices, the first ranks one sample more."""
        return index.tensor_split(self.world)[self.rank]

    def mean(self, value: torch.Tensor) -> float:
        total = value.detach().to(self.device, torch.float64).reshape(1)
        dist.all_reduce(total)
        return total.item() / self.world

    def sum(self, *figures) -> list[float]:
        totals = torch.tensor([float(figure) for figure in figures], dtype=torch.float64, device=self.device)
        dist.all_reduce(totals)
        return totals.tolist()

    def from_first(self, figures: tuple[float, ...] | None, count: int = 2) -> tuple[float, ...]:
        """The first rank's figures, on every rank (the others pass None)."""
        values = torch.tensor(figures if figures is not None else [0.0] * count, dtype=torch.float64,
                              device=self.device)
        dist.broadcast(values, 0)
        return tuple(values.tolist())

    def check_replicas(self, model: torch.nn.Module, step: int) -> None:
        """Raise when the replicas' weights differ: each parameter's sum (float64) must match bit for bit."""
        sums = [parameter.detach().sum(dtype=torch.float64) for parameter in model.parameters()]
        mine = torch.stack(sums).to(self.device) if sums else torch.zeros(1, dtype=torch.float64, device=self.device)
        everyone = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(everyone, mine)
        for rank, theirs in enumerate(everyone):
            if not torch.equal(theirs, everyone[0]):
                raise RecipeError(f"the replicas' weights differ after step {step} (rank {rank} against rank 0); "
                                  "the data-parallel training is not in step and was stopped")
        self.replica_checks += 1


@dataclasses.dataclass(frozen=True)
class Meeting:
    """Where one run's ranks meet: a file store in its private folder, or (several hosts) the first host's TCP store
    under the round's prefix. This host runs ranks first_rank .. first_rank + local - 1 of world."""
    folder: str
    local: int
    world: int
    first_rank: int = 0
    address: str = ""
    port: int = 0
    prefix: str = ""
    interface: str = "lo"  # the sandbox has a loopback and no name for it: one host's ranks meet on lo
    threads: int = 0  # each rank's torch threads; 0: as this host decides (run_local)

    @classmethod
    def across_hosts(cls, round_: Round, node: int, address: str, port: int, interface: str,
                     folder: str) -> "Meeting":
        return cls(folder, round_.ranks_per_host, round_.ranks_per_host * round_.hosts, round_.first_rank(node),
                   address, port, round_.prefix, interface, round_.threads)

    def store(self) -> dist.Store:
        if not self.address:
            return dist.FileStore(str(Path(self.folder) / STORE_FILE), self.world)
        store = dist.TCPStore(self.address, self.port, is_master=False, timeout=COLLECTIVE_TIMEOUT)
        return dist.PrefixStore(self.prefix, store)

    @property
    def timeout(self) -> timedelta | None:
        return COLLECTIVE_TIMEOUT if self.address else None


def available_ranks(device: torch.device) -> int:
    """How many ranks the worker gives a job on `device`: its GPUs, or the CPU cores it may run on."""
    if device.type == "cuda":
        return torch.cuda.device_count()
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def choose_ranks(requested: int, device: torch.device) -> tuple[int, str]:
    """(ranks, backend) for the `ranks` setting: 0 means every device; more than there are is refused."""
    available = max(1, available_ranks(device))
    ranks = available if requested == 0 else requested
    what = "GPUs" if device.type == "cuda" else "CPU cores"
    if ranks > available:
        raise RecipeError(f"ranks {ranks} asks for more replicas than the {available} {what} this worker gives the "
                          f"job; use ranks {available} or fewer (0 takes them all)")
    return ranks, "nccl" if device.type == "cuda" else "gloo"


def run_ranks(world: int, backend: str, work: RankWork, report: Reporter, folder: str,
              spawn: bool | None = None, hosts: int = 1) -> Any:
    """Run `work` on `world` ranks and return the first rank's answer; raise when any rank fails or dies.

    `folder` is private to this run (the caller removes it). Events the first rank reports reach `report`;
    cancelling `report` kills the ranks and raises Cancelled. spawn defaults to: NCCL ranks are spawned, gloo
    ranks forked (the CPU tests of the GPU path spawn gloo ranks). hosts > 1: `world` ranks on each of that many of
    the job's hosts (a round of optimizers.training.hosts, from its first host), rank 0 here.
    """
    if hosts == 1:
        return run_local(Meeting(folder, world, world), backend, work, report, spawn)
    cluster = current()
    if cluster is None or hosts != cluster.hosts.count:
        raise ValueError(f"a run on {hosts} hosts outside a job on as many")
    # Every host's ranks use the first host's thread count: with another, the same sums may round differently (the
    # kernels split the work differently), and the replicas' weights drift apart bit by bit.
    round_ = cluster.announce(world, backend, work, _threads_per_rank(_spawns(backend, work, spawn), world))
    meeting = Meeting.across_hosts(round_, 0, cluster.hosts.address, cluster.hosts.port, cluster.hosts.interface,
                                   folder)
    try:
        return run_local(meeting, backend, work, report, spawn, others=OtherHosts(cluster, round_))
    finally:
        cluster.forget(round_)


def run_local(meeting: Meeting, backend: str, work: RankWork | None, report: Reporter, spawn: bool | None = None,
              others: OtherHosts | None = None) -> Any:
    """This host's ranks of `meeting`; None as `work`: spawned ranks find it in the folder already (another host's).

    others (the first host's, in a round on several hosts) says why another host could not take its part, or that
    one stopped answering; either stops this host's ranks too."""
    spawned = _spawns(backend, work, spawn)
    context = multiprocessing.get_context("spawn" if spawned else "fork")
    if spawned and work is not None:
        _save_work(work, Path(meeting.folder) / WORK_FILE, backend)
    messages = context.Queue()
    threads = meeting.threads or _threads_per_rank(spawned, meeting.local)
    processes = [context.Process(target=_rank_main, name=f"slimforge-rank-{meeting.first_rank + local}", daemon=True,
                                 args=(local, meeting, backend, threads, None if spawned else work, messages))
                 for local in range(meeting.local)]
    try:
        for process in processes:
            process.start()
        return _watch(processes, messages, report, meeting, others)
    finally:
        _stop(processes)
        messages.close()
        messages.join_thread()


def _spawns(backend: str, work: RankWork | None, spawn: bool | None) -> bool:
    """NCCL ranks and another host's (whose work is in a file) are spawned, gloo ranks forked, unless told, or unless
    autograd here no longer allows a fork (optimizers.training.forking: a GPU machine's CPU ranks, say)."""
    if spawn is not None:
        return spawn
    return backend == "nccl" or work is None or not forking.fork_keeps_autograd()


def _threads_per_rank(spawned: bool, local: int) -> int:
    # A forked rank keeps to one thread: GNU OpenMP's pool does not survive fork, and a child that starts a parallel
    # region the parent had used hangs. A spawned rank starts clean and takes its share of the threads.
    return max(1, torch.get_num_threads() // local) if spawned else 1


def _save_work(work: RankWork, path: Path, backend: str) -> None:
    portable.picklable()
    try:
        torch.save(work, path)
    except Exception as error:  # noqa: BLE001 - pickle's errors for an object it cannot carry
        why = ("GPU ranks" if backend == "nccl" else
               "this process's autograd already runs device threads, so its CPU ranks cannot be forked")
        raise RecipeError(f"this recipe's training cannot be handed to spawned replicas ({why}): "
                          f"{first_line(error)}; use ranks 1") from error


class _QueueReporter:
    """The first rank's reporter: its events travel to the coordinator, which reports them."""

    def __init__(self, messages) -> None:
        self.messages = messages

    def progress(self, done: int, total: int, stage: str) -> None:
        self.messages.put(("event", progress_event(done, total, stage)))

    def metric(self, name: str, step: int, value: float) -> None:
        self.messages.put(("event", metric_event(name, step, value)))

    def stage(self, name: str) -> None:
        self.messages.put(("event", stage_event(name)))

    def log(self, message: str) -> None:
        self.messages.put(("event", log_event(message)))

    def cancelled(self) -> bool:
        return False  # the coordinator watches the cancel flag and kills every rank


def _rank_main(local: int, meeting: Meeting, backend: str, threads: int, work: RankWork | None, messages) -> None:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # a cancel is the coordinator's to act on
    rank = meeting.first_rank + local
    try:
        torch.set_num_threads(threads)
        device = torch.device("cpu")
        # gloo (and NCCL's bootstrap) connect over the meeting's interface: not the host name, which the sandbox lacks
        os.environ["GLOO_SOCKET_IFNAME"] = os.environ["NCCL_SOCKET_IFNAME"] = meeting.interface
        if backend == "nccl":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if work is None:  # spawned: the work arrives through its file, its tensors straight onto this rank's device
            with portable.arriving_on(device):
                work = torch.load(Path(meeting.folder) / WORK_FILE, map_location=device, weights_only=False)
        dist.init_process_group(backend, store=meeting.store(), rank=rank, world_size=meeting.world,
                                **({"timeout": meeting.timeout} if meeting.timeout else {}))
        group = RankGroup(rank, meeting.world, device, meeting.folder)
        answer = work(group, _QueueReporter(messages) if rank == 0 else NullReporter())
        if rank == 0:
            messages.put(("done", answer))
        dist.destroy_process_group()
        code = 0
    except BaseException as error:  # noqa: BLE001 - the coordinator must learn why, whatever it was
        messages.put(("error", rank, type(error).__name__, str(error) if isinstance(error, RecipeError)
                      else f"{type(error).__name__}: {first_line(error)}"))
        code = 1
    # Flush the messages, then leave without the interpreter's shutdown: in a spawned rank torch's C++ destructors
    # at exit abort on a thread still running ("terminate called without an active exception").
    messages.close()
    messages.join_thread()
    os._exit(code)

def _watch(processes: list, messages, report: Reporter, meeting: Meeting, others: OtherHosts | None) -> Any:
    # Rank 0 answers; the ranks of another host than the first have nothing to say but that they ended well.
    answered, answer, ended_at = meeting.first_rank != 0, None, None
    while True:
        message = _next(messages, POLL_S)
        if message is not None:
            if message[0] == "event":
                _forward(report, message[1])
            elif message[0] == "done":
                answered, answer = True, message[1]
            else:
                raise _failure(message, processes, meeting, others)
        codes = [process.exitcode for process in processes]
        if answered and all(code == 0 for code in codes):
            return answer
        if report.cancelled():
            raise Cancelled()
        # A rank blocked in a collective with a host that died without a word says nothing: the host's silence does;
        # run_local then kills this host's ranks.
        elsewhere = others.failure() if others is not None else None
        if elsewhere:
            raise RecipeError(f"the training stopped: {elsewhere}")
        dead = next(((rank, code) for rank, code in enumerate(codes) if code not in (None, 0)), None)
        if dead is not None or all(code == 0 for code in codes):
            # Ended without an answer: its own error message may still be on its way; then say how it died.
            ended_at = ended_at or time.monotonic()
            if message is None and time.monotonic() - ended_at > RANK_ERROR_WAIT_S:
                raise _exit_error(dead, meeting)


def _exit_error(dead: tuple[int, int] | None, meeting: Meeting) -> RecipeError:
    world = meeting.world
    if dead is None:
        return RecipeError("the training replicas ended without a result")
    local, code = dead
    rank = meeting.first_rank + local
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    hint = " (it may have run out of memory)" if code == -signal.SIGKILL else ""
    return RecipeError(f"training replica {rank} of {world} {how}{hint}; the other replicas were stopped and the "
                       "training failed")


# What the collectives raise when a peer went away (gloo: RuntimeError with these words; NCCL: DistBackendError).
_PEER_ERROR_TYPES = {"DistError", "DistBackendError", "DistNetworkError", "DistStoreError"}
_PEER_TROUBLE = re.compile(r"connection (reset|closed|refused)|broken pipe|timed out|timeout|socket|\bgloo\b|nccl",
                           re.IGNORECASE)


def _peer_trouble(error_type: str, text: str) -> bool:
    return error_type in _PEER_ERROR_TYPES or bool(_PEER_TROUBLE.search(text))


def _failure(message: tuple, processes: list, meeting: Meeting, others: OtherHosts | None) -> Exception:
    """The error a rank sent, unless another rank was killed or another host could not take its part or died: then
    the survivors' errors (a peer's connection closed) are only its consequence, and the cause is what the user needs
    to hear about."""
    _, rank, error_type, text = message
    world, sender = meeting.world, rank - meeting.first_rank
    peers = [(local, process) for local, process in enumerate(processes) if local != sender]
    # An error of the collectives (a peer's connection closed) may be another host's consequence: its word may still
    # be on its way. A host that died without one is waited for until its silence counts, unless every other host
    # was heard after the error came. Any other error (the model's own, a RecipeError) is the cause, whatever the
    # other hosts' replicas say next about the connection it closed.
    asks_elsewhere = others is not None and _peer_trouble(error_type, text)
    came_at = time.monotonic()
    deadline, silence_deadline = came_at + RANK_ERROR_WAIT_S, came_at + heartbeats.HOST_SILENT_S + RANK_ERROR_WAIT_S
    while error_type != Cancelled.__name__:
        killed = next(((local, process.exitcode) for local, process in peers
                       if process.exitcode is not None and process.exitcode < 0), None)
        if killed is not None:
            return _exit_error(killed, meeting)
        elsewhere = others.failure() if asks_elsewhere else None
        if elsewhere:
            return RecipeError(f"the training stopped: {elsewhere}")
        now = time.monotonic()
        unheard = asks_elsewhere and not others.heard_all_since(came_at) and now < silence_deadline
        if now > deadline and not unheard:
            break
        if not asks_elsewhere and all(process.exitcode is not None for _, process in peers):
            break
        time.sleep(POLL_S)
    if error_type == Cancelled.__name__:
        return Cancelled()
    return RecipeError(text if error_type == RecipeError.__name__ else f"training replica {rank} of {world} failed: "
                                                                       f"{text}")


def _forward(report: Reporter, event: dict) -> None:
    kind = event["kind"]
    if kind == "progress":
        report.progress(event["done"], event["total"], event["stage"])
    elif kind == "metric":
        report.metric(event["name"], event["step"], event["value"])
    elif kind == "stage":
        report.stage(event["name"])
    else:
        report.log(event["message"])


def _next(messages, timeout: float):
    try:
        return messages.get(timeout=timeout)
    except queue.Empty:
        return None


def _stop(processes: list) -> None:
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        if process.pid is not None:
            process.join(timeout=10)
