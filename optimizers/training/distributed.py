"""Processes that train together (DDP ranks): starting them, what each knows of the others, and watching them.

The job's own process coordinates and does not train: it starts one process per rank, forwards the first
rank's events to its reporter, and watches them all. A rank that fails or dies fails the whole group with a
message that names it, and every other rank is killed, so no process is left behind; a cancelled job kills
them too (the last epoch's checkpoint stays, written whole).

On CPU the ranks are forked: they inherit the model, the data and the recipe's hooks (closures over a teacher
that may be an onnxruntime session) without copying them through pickle. CUDA cannot be used in a process forked
after it was initialised, so GPU ranks are spawned and the work they run goes to them through torch.save, one
file for all of it, so the hooks still point at the model's own parameters (pickle keeps shared references).
The ranks meet through a file store in a private folder (no port to agree on); gloo's own
connections then run over the loopback, which in the job's sandbox is the job's alone.
"""
import dataclasses
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from optimizers.errors import Cancelled, RecipeError, first_line
from optimizers.events import log_event, metric_event, progress_event, stage_event
from optimizers.reporters import NullReporter, Reporter

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
              spawn: bool | None = None) -> Any:
    """Run `work` on `world` ranks and return the first rank's answer; raise when any rank fails or dies.

    `folder` is private to this run (the caller removes it). Events the first rank reports reach `report`;
    cancelling `report` kills the ranks and raises Cancelled. spawn defaults to: NCCL ranks are spawned, gloo
    ranks forked (the CPU tests of the GPU path spawn gloo ranks).
    """
    spawned = backend == "nccl" if spawn is None else spawn
    context = multiprocessing.get_context("spawn" if spawned else "fork")
    if spawned:
        torch.save(work, Path(folder) / WORK_FILE)
    messages = context.Queue()
    # A forked rank keeps to one thread: GNU OpenMP's pool does not survive fork, and a child that starts a parallel
    # region the parent had used hangs. A spawned rank starts clean and takes its share of the threads.
    threads = max(1, torch.get_num_threads() // world) if spawned else 1
    processes = [context.Process(target=_rank_main, name=f"slimforge-rank-{rank}", daemon=True,
                                 args=(rank, world, backend, folder, threads, None if spawned else work, messages))
                 for rank in range(world)]
    try:
        for process in processes:
            process.start()
        return _watch(processes, messages, report, world)
    finally:
        _stop(processes)
        messages.close()
        messages.join_thread()


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


def _rank_main(rank: int, world: int, backend: str, folder: str, threads: int, work: RankWork | None,
               messages) -> None:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # a cancel is the coordinator's to act on
    try:
        torch.set_num_threads(threads)
        device = torch.device("cpu")
        if backend == "gloo":  # the sandbox has a loopback and no name for it: meet on lo, not the host name
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        if backend == "nccl":
            device = torch.device("cuda", rank)
            torch.cuda.set_device(device)
        if work is None:  # spawned: the work arrives through its file, its tensors straight onto this rank's device
            work = torch.load(Path(folder) / WORK_FILE, map_location=device, weights_only=False)
        store = dist.FileStore(str(Path(folder) / STORE_FILE), world)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world)
        group = RankGroup(rank, world, device, folder)
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

def _watch(processes: list, messages, report: Reporter, world: int) -> Any:
    answered, answer, ended_at = False, None, None
    while True:
        message = _next(messages, POLL_S)
        if message is not None:
            if message[0] == "event":
                _forward(report, message[1])
            elif message[0] == "done":
                answered, answer = True, message[1]
            else:
                raise _failure(message, processes, world)
        codes = [process.exitcode for process in processes]
        if answered and all(code == 0 for code in codes):
            return answer
        if report.cancelled():
            raise Cancelled()
        dead = next(((rank, code) for rank, code in enumerate(codes) if code not in (None, 0)), None)
        if dead is not None or all(code == 0 for code in codes):
            # Ended without an answer: its own error message may still be on its way; then say how it died.
            ended_at = ended_at or time.monotonic()
            if message is None and time.monotonic() - ended_at > RANK_ERROR_WAIT_S:
                raise _exit_error(dead, world)


def _exit_error(dead: tuple[int, int] | None, world: int) -> RecipeError:
    if dead is None:
        return RecipeError("the training replicas ended without a result")
    rank, code = dead
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    hint = " (it may have run out of memory)" if code == -signal.SIGKILL else ""
    return RecipeError(f"training replica {rank} of {world} {how}{hint}; the other replicas were stopped and the "
                       "training failed")


def _failure(message: tuple, processes: list, world: int) -> Exception:
    """The error a rank sent, unless another rank was killed: then the survivors' errors (a peer's connection
    closed) are only its consequence, and the killed one is what the user needs to hear about."""
    _, rank, error_type, text = message
    deadline = time.monotonic() + RANK_ERROR_WAIT_S
    while time.monotonic() < deadline and error_type != Cancelled.__name__:
        killed = next(((other, process.exitcode) for other, process in enumerate(processes)
                       if other != rank and process.exitcode is not None and process.exitcode < 0), None)
        if killed is not None:
            return _exit_error(killed, world)
        if all(process.exitcode is not None for other, process in enumerate(processes) if other != rank):
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
