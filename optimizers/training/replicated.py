"""fit on several data-parallel replicas (DDP), and the samples/s it reaches at 1..N of them.

Every rank runs the same loop (optimizers.training.loop.train) on its share of each batch. The global batch stays
the batch_size setting whatever the number of ranks, so a run on N replicas takes the same steps as one alone and
differs only in how each step's work is divided (and in batch norm's statistics, computed per share): DDP
averages the shares' gradients, and equal shares average to the whole batch's gradient. After every step the
replicas compare their weights (optimizers.training.distributed.RankGroup.check_replicas).

The scaling figures are measured, not estimated: a few real training steps on a copy of the model in each rank
(forked or spawned, the job's model is untouched) at 1, 2, .. N replicas, timed after a warm-up. A job on several
hosts (optimizers.training.hosts) trains on N replicas on each of them, and its scaling adds the figure of all of them.
"""
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from optimizers.configs.finetune import FineTuneSettings
from optimizers.data.splits import DataSplits
from optimizers.reporters import NullReporter, Reporter
from optimizers.training.distributed import RankGroup, run_ranks
from optimizers.training.epochs import EpochRunner, device_of
from optimizers.training.hosts import host_count
from optimizers.training.modes import prepare_parameters, set_training
from optimizers.training.setup import build_optimizer, build_schedule

RESULT_FILE = "rank0-weights.pt"
PROBE_WARMUP_STEPS = 3
PROBE_STEPS = 20


def fit_replicated(train: Callable, model: nn.Module, splits: DataSplits, input_shape: tuple[int, ...],
                   settings: FineTuneSettings, report: Reporter, options: dict[str, Any], ranks: int,
                   backend: str):
    """`train` on `ranks` replicas on each of the job's hosts; leaves `model` holding the first replica's best epoch,
    in inference mode."""
    hosts = host_count()
    with tempfile.TemporaryDirectory(prefix="slimforge-ranks-") as folder:
        work = functools.partial(_fit_in_rank, train, model, splits, input_shape, settings, options)
        outcome = run_ranks(ranks, backend, work, report, folder, hosts=hosts)
        weights = torch.load(Path(folder) / RESULT_FILE, map_location=device_of(model), weights_only=True)
    model.load_state_dict(weights)
    set_training(model, False)
    where = f"{ranks * hosts} data-parallel replicas, {ranks} on each of {hosts} hosts," if hosts > 1 else \
        f"{ranks} data-parallel replicas"
    note = (f"trained on {where} (DDP over {backend}); each step's batch of "
            f"{settings.batch_size} is shared between them, and their weights were compared after each of "
            f"{outcome.distributed['replica_checks']} steps and found identical")
    outcome.notes.append(note)
    report.log(f"{options['stage']}: {note}")
    return outcome


def measure_scaling(train: Callable, model: nn.Module, splits: DataSplits, input_shape: tuple[int, ...],
                    settings: FineTuneSettings, report: Reporter, options: dict[str, Any], ranks: int,
                    backend: str) -> list[dict[str, float]]:
    """[{ranks, samples_per_s, efficiency}] at 1..ranks replicas on this host, then (a job on several hosts) at
    ranks on each of them, with "hosts"; efficiency = samples/s over ranks x one's."""
    figures: list[dict[str, float]] = []
    hosts = host_count()
    runs = [(count, 1) for count in range(1, ranks + 1)] + ([(ranks, hosts)] if hosts > 1 else [])
    for count, on_hosts in runs:
        with tempfile.TemporaryDirectory(prefix="slimforge-probe-") as folder:
            work = functools.partial(_probe_in_rank, model, splits, input_shape, settings, options)
            rate = run_ranks(count, backend, work, report, folder, hosts=on_hosts)
        total = count * on_hosts
        figures.append({"ranks": total, "samples_per_s": rate,
                        "efficiency": rate / (total * figures[0]["samples_per_s"]) if figures else 1.0,
                        **({"hosts": on_hosts} if on_hosts > 1 else {})})
    described = "; ".join([f"1 replica {figures[0]['samples_per_s']:,.0f} samples/s"] + [
        f"{entry['ranks']} replicas{' on ' + str(entry['hosts']) + ' hosts' if 'hosts' in entry else ''} "
        f"{entry['samples_per_s']:,.0f} samples/s (efficiency {entry['efficiency']:.2f})" for entry in figures[1:]])
    report.log(f"{options['stage']}: data-parallel scaling over {backend}, measured on {PROBE_STEPS} training steps "
               f"each: {described}")
    return figures


def distributed_extras(figures: list[dict | None]) -> dict:
    """report.json's "distributed" entry from each fine-tuning's figures: the first's scaling, every replica check."""
    trained = [entry for entry in figures if entry]
    if not trained:
        return {}
    return {"distributed": {**trained[0], "replica_checks": sum(entry["replica_checks"] for entry in trained)}}

def _replica(model: nn.Module, group: RankGroup) -> DistributedDataParallel:
    prepare_parameters(model)  # DDP registers the parameters that train: decide which before it does
    return DistributedDataParallel(model, device_ids=[group.device] if group.device.type == "cuda" else None)


def _fit_in_rank(train: Callable, model: nn.Module, splits: DataSplits, input_shape: tuple[int, ...],
                 settings: FineTuneSettings, options: dict[str, Any], group: RankGroup, report: Reporter):
    outcome = train(model, splits, input_shape, settings, report, **options, group=group,
                    forward_model=_replica(model, group))
    if group.rank == 0:
        torch.save(model.state_dict(), Path(group.folder) / RESULT_FILE)
    outcome.distributed = {"backend": dist.get_backend(), "ranks": group.world, "replica_checks": group.replica_checks,
                           **({"hosts": host_count()} if host_count() > 1 else {})}
    return outcome


def _probe_in_rank(model: nn.Module, splits: DataSplits, input_shape: tuple[int, ...], settings: FineTuneSettings,
                   options: dict[str, Any], group: RankGroup, report: Reporter) -> float:
    """Samples/s of the whole group over PROBE_STEPS real training steps (this rank's copy of the model learns)."""
    runner = EpochRunner(model, splits, input_shape, settings, NullReporter(), options["prefix"], options["stage"],
                         options["loss_fn"], options["after_step"], options["step_offset"], options["evaluate_fn"],
                         options["score_name"], group=group, forward_model=_replica(model, group))
    runner.plan_batches()
    optimizer = build_optimizer(model, settings)
    schedule = build_schedule(optimizer, settings, runner.total_steps)
    set_training(model, True)
    order = torch.randperm(len(splits.train_x), generator=torch.Generator().manual_seed(settings.seed))
    size = runner.batch_size
    batches = [order[start:start + size] for start in range(0, len(order) - size + 1, size)]
    for step in range(PROBE_WARMUP_STEPS + PROBE_STEPS):
        if step == PROBE_WARMUP_STEPS:
            _synchronize(group)
            started = time.perf_counter()
        runner.train_step(group.shard(batches[step % len(batches)]), optimizer, schedule)
        if runner.after_step is not None:
            runner.after_step(step + 1)
    _synchronize(group)
    return PROBE_STEPS * size / (time.perf_counter() - started)


def _synchronize(group: RankGroup) -> None:
    if group.device.type == "cuda":
        torch.cuda.synchronize(group.device)
    dist.barrier()
