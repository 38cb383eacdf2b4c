"""Replica processes on the CPU: several copies of the model, each in its own process with one thread, serving whole
batches at once. For small models this often beats one process with several threads, whose per-layer work is too
short to split well.

The replicas are forked (the model and the batch come with them, nothing is pickled) and keep to one thread: GNU
OpenMP's pool does not survive fork, and a child that used more threads than the parent had started would hang.
They start timing together, behind a barrier, so each one's latencies are measured while the others compete
for the cores, memory bandwidth and caches, as they would in a server.
"""
import multiprocessing
import os
import queue
import time
from typing import Any

import torch

from optimizers.measure.inference import inference_context, percentile

START_TIMEOUT_S = 60.0


def time_replicas(module: Any, batch: torch.Tensor, replicas: int, repeats: int, warmup: int = 3,
                  budget_s: float = 30.0) -> dict[str, Any]:
    """p50 and p95 (ms) of one batch in any of `replicas` processes serving at the same time, and the runs timed.

    Raises RuntimeError with the replica's own error when one fails, or when one does not answer in time.
    """
    context = multiprocessing.get_context("fork")
    barrier, answers = context.Barrier(replicas), context.Queue()
    processes = [context.Process(target=_serve, args=(module, batch, repeats, warmup, budget_s, barrier, answers),
                                 name=f"slimforge-replica-{index}", daemon=True) for index in range(replicas)]
    timings: list[float] = []
    try:
        for process in processes:
            process.start()
        allowed = START_TIMEOUT_S + 2 * budget_s
        deadline = time.monotonic() + allowed
        for _ in range(replicas):
            try:
                kind, value = answers.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"a replica process did not finish within {allowed:.0f} s") from None
            if kind == "error":
                raise RuntimeError(value)
            timings += value
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join(timeout=10)
        answers.close()
        answers.join_thread()
    return {"p50": round(percentile(timings, 50), 4), "p95": round(percentile(timings, 95), 4), "runs": len(timings)}


def _serve(module: Any, batch: torch.Tensor, repeats: int, warmup: int, budget_s: float, barrier, answers) -> None:
    try:
        torch.set_num_threads(1)
        timings: list[float] = []
        with inference_context(module):
            for _ in range(warmup):
                module(batch)
            barrier.wait(timeout=START_TIMEOUT_S)
            deadline = time.perf_counter() + budget_s
            while len(timings) < repeats and (len(timings) < 3 or time.perf_counter() < deadline):
                started = time.perf_counter()
                module(batch)
                timings.append((time.perf_counter() - started) * 1000.0)
        answers.put(("timings", timings))
        code = 0
    except BaseException as error:  # noqa: BLE001 - the parent must learn why, whatever it was
        answers.put(("error", f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"))
        code = 1
    answers.close()
    answers.join_thread()  # flushed, then out without the interpreter's shutdown (see distributed._rank_main)
    os._exit(code)
