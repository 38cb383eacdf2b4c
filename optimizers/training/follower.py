"""A further host of a multi-host job (optimizers.training.hosts): it lends its devices and runs only replicas.

It joins the first host's store, says what devices it has, and runs its share of the ranks of every round the first
host announces, spawned, with the work that came through the store (it never sees the job's files). When it cannot
take its part, it says why under the round's key, for the first host to fail the job with; it leaves when the first
host says the job has finished. For as long as it is in the job it beats (optimizers.training.heartbeats), so that the
first host notices soon when it dies without a word.
"""
import shutil
from pathlib import Path

import torch

from optimizers.errors import Cancelled, RecipeError, first_line
from optimizers.reporters import Reporter
from optimizers.training.distributed import WORK_FILE, Meeting, available_ranks, run_local
from optimizers.training.heartbeats import beating
from optimizers.training.hosts import Cluster, Hosts, open_store


def serve(hosts: Hosts, report: Reporter, folder: str) -> dict:
    """Run this host's ranks of each round until the first host finishes; {"rounds": run, "devices": lent}."""
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    devices, kind = available_ranks(device), "GPUs" if device.type == "cuda" else "CPU cores"
    cluster = Cluster(hosts, open_store(hosts))
    cluster.join(devices, kind)
    report.log(f"host {hosts.node + 1} of {hosts.count} joined the job with {devices} {kind}")
    try:
        # Beats only once joined: a join refused (delivered again) must not speak for the host that has this node.
        with beating(hosts.address, hosts.port, hosts.node, hosts.wait_s):
            rounds = _serve_rounds(cluster, report, folder, device, devices, kind)
    except BaseException as error:
        cluster.gone("it left the job: " + (str(error) if isinstance(error, RecipeError | Cancelled)
                                            else f"{type(error).__name__}: {first_line(error)}"))
        raise
    return {"rounds": rounds, "devices": devices, "kind": kind}


def _serve_rounds(cluster: Cluster, report: Reporter, folder: str, device: torch.device, devices: int,
                  kind: str) -> int:
    hosts, rounds = cluster.hosts, 0
    while (announced := cluster.next_round(report)) is not None:
        round_, backend, work = announced
        rounds += 1
        place = Path(folder) / f"round-{round_.index}"
        try:
            if round_.ranks_per_host > devices:
                raise RecipeError(f"it has {devices} {kind}, and each host is to run {round_.ranks_per_host} "
                                  "replicas; give every host as many devices")
            if backend == "nccl" and device.type != "cuda":
                raise RecipeError("it has no GPU, and the replicas use NCCL")
            place.mkdir(parents=True)
            (place / WORK_FILE).write_bytes(cluster.unseal(work))  # checked before anything of it is unpickled
            meeting = Meeting.across_hosts(round_, hosts.node, hosts.address, hosts.port, hosts.interface, str(place))
            run_local(meeting, backend, None, report, spawn=True)
        except Cancelled:
            raise
        except Exception as error:  # noqa: BLE001 - whatever stopped it, the first host must hear of it
            message = str(error) if isinstance(error, RecipeError) else f"{type(error).__name__}: {first_line(error)}"
            cluster.fail(round_, message)
            report.log(f"round {round_.index + 1}: could not take its part: {message}")
        finally:
            shutil.rmtree(place, ignore_errors=True)
    return rounds
