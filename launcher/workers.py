"""Which Celery worker processes one machine runs: one per GPU (or per group of GPUs for data-parallel jobs), each
seeing only its own devices, or one CPU worker on a machine without GPUs.

Each worker's GPUs are fixed by CUDA_VISIBLE_DEVICES in its environment before it starts, so CUDA numbers them from 0
inside it; the launcher and the worker's main process never initialize CUDA (the worker forks its pool from that
process, and a forked child cannot use a CUDA context it inherited): jobs touch the GPU only in the sandbox's
child processes, which are started fresh and hand their memory back when they exit. A GPU worker runs one job at a
time.

Queues are named by device shape, as optimizers.configs.devices names them (this module imports none of Slimforge,
so it spells the rule again; tests/launcher checks the two agree): "cpu", "gpu", "gpu-x2", ...; every worker with a
GPU also serves "gpu-any" (jobs that need a GPU but no particular shape), and every worker serves the shared queue
(inspections, datasets, experiments that ask for any device) unless told not to.

Standard library only: no Django, no torch.
"""
import re
import shutil
import subprocess
from dataclasses import dataclass, field

GPU_ANY = "gpu-any"
DEVICE_ID = re.compile(r"[A-Za-z0-9:-]{1,64}")  # an index, or a GPU/MIG UUID


class WorkerPlanError(ValueError):
    """The devices or options given cannot make a plan; the message says which and why."""


@dataclass(frozen=True)
class WorkerSpec:
    name: str  # Celery's node name before "@host"
    host: str  # after it: Celery's %h (the host name) unless a name is given
    devices: tuple[str, ...]  # as CUDA_VISIBLE_DEVICES lists them; empty for a CPU worker
    queues: tuple[str, ...]
    concurrency: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> str:
        return shape_of(len(self.devices))

    def celery_args(self) -> list[str]:
        return ["-m", "celery", "-A", "tasks", "worker", "--loglevel=INFO", f"--concurrency={self.concurrency}",
                "-Q", ",".join(self.queues), "-n", f"{self.name}@{self.host}"]

    def describe(self) -> dict:
        return {"name": f"{self.name}@{self.host}", "shape": self.shape, "devices": list(self.devices),
                "queues": list(self.queues), "concurrency": self.concurrency, "env": dict(self.env)}


def shape_of(gpus: int) -> str:
    return "cpu" if gpus == 0 else "gpu" if gpus == 1 else f"gpu-x{gpus}"


def visible_devices(env: dict[str, str]) -> list[str]:
    """The GPUs this machine offers the workers: CUDA_VISIBLE_DEVICES when set (an empty value: none), else what
    nvidia-smi lists (no nvidia-smi: none). NVML and nvidia-smi do not initialize CUDA."""
    given = env.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return parse_device_list(given, "CUDA_VISIBLE_DEVICES")
    return _nvidia_smi_indexes()


def parse_device_list(text: str, what: str) -> list[str]:
    devices = [part.strip() for part in text.split(",") if part.strip()]
    for device in devices:
        if not DEVICE_ID.fullmatch(device):
            raise WorkerPlanError(f"{what} lists {device[:70]!r}, which is no GPU index or UUID")
    if len(set(devices)) != len(devices):
        raise WorkerPlanError(f"{what} lists a GPU twice: {text!r}")
    return devices


def _nvidia_smi_indexes() -> list[str]:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        listing = subprocess.run([tool, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []  # a driver that does not answer: this machine offers no GPU to jobs
    return [line.strip() for line in listing.splitlines() if line.strip().isdigit()]


def plan_workers(devices: list[str], *, gpus_per_worker: int = 1, shared_queue: str | None = "slimforge",
                 cpu_worker: bool | None = None, cpu_concurrency: int = 1,
                 extra_queues: tuple[str, ...] = (), host: str = "%h") -> tuple[list[WorkerSpec], list[str]]:
    """The workers for these GPUs, and the GPUs left over (fewer than a group). `cpu_worker` None: a CPU worker only
    when there is no GPU. `shared_queue` None: the workers serve only their shapes' queues (and `extra_queues`)."""
    if not 1 <= gpus_per_worker <= 64:
        raise WorkerPlanError(f"--gpus-per-worker must be 1 to 64, not {gpus_per_worker}")
    if not re.fullmatch(r"%h|[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", host):
        raise WorkerPlanError(f"--host {host[:70]!r}: a host name is letters, digits, '_', '.', '-'")
    if not 1 <= cpu_concurrency <= 64:
        raise WorkerPlanError(f"--concurrency must be 1 to 64, not {cpu_concurrency}")
    groups = [tuple(devices[start:start + gpus_per_worker])
              for start in range(0, len(devices) - gpus_per_worker + 1, gpus_per_worker)]
    left_over = devices[len(groups) * gpus_per_worker:]
    common = ((shared_queue,) if shared_queue else ()) + tuple(extra_queues)
    workers = [WorkerSpec(name=f"{shape_of(len(group))}-{number}", host=host, devices=group,
                          queues=_unique((shape_of(len(group)), GPU_ANY, *common)), concurrency=1,
                          env={"CUDA_VISIBLE_DEVICES": ",".join(group)})
               for number, group in enumerate(groups)]
    if cpu_worker or (cpu_worker is None and not workers):
        # An empty CUDA_VISIBLE_DEVICES hides every GPU: a CPU worker's jobs must not wander onto one.
        workers.append(WorkerSpec(name="cpu", host=host, devices=(), queues=_unique(("cpu", *common)),
                                  concurrency=cpu_concurrency, env={"CUDA_VISIBLE_DEVICES": ""}))
    return workers, left_over


def _unique(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def queues_option(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise WorkerPlanError(f"--queues lists {name[:70]!r}: a queue name is letters, digits, '_', '.', '-'")
    return names


def default_shared_queue(env: dict[str, str]) -> str:
    return env.get("SLIMFORGE_DEFAULT_QUEUE") or "slimforge"
