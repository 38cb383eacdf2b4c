"""Celery task entry points. They take ids, touch user files only inside the sandbox, and record through services."""
import errno
import functools
import logging
import re
import shutil
import socket
import tempfile
from pathlib import Path

from django.conf import settings

from optimizers import events
from optimizers.configs import parse_config
from optimizers.errors import SpecError
from optimizers.job_spec import JobSpec
from tasks import multihost, placement
from tasks.bridge import EventBridge
from tasks.celery import INSPECT_MODEL, JOIN_EXPERIMENT, PREPARE_DATASET, RUN_EXPERIMENT, app
from tasks.db_retry import DB_ERRORS, forget_connection, retrying
from tasks.file_cache import StoredFileCache
from tasks.sandbox import Cancel, JobCancelled, Limits, SandboxError, run_sandboxed
from tasks.telemetry import Sampler
from webapp import selectors, services

log = logging.getLogger(__name__)
OUTPUT_NAME = re.compile(r"[a-z0-9_]{1,40}(\.[a-z0-9]{1,12}){1,3}")


def _copy_local(field_file, target: Path) -> Path:
    """Any storage backend: the sandbox reads a local copy under a name we chose. A file whose row recorded its sha256
    and size (a model, a dataset's upload) comes through the worker's cache, checked against them (tasks.file_cache):
    with an object store, a second job on the same file downloads nothing."""
    row = getattr(field_file, "instance", None)  # the FieldFile's model row
    cache = StoredFileCache(settings.WORKER_CACHE_DIR, settings.WORKER_CACHE_BYTES)
    cache.copy(lambda: field_file.open("rb"), target, sha256=getattr(row, "sha256", ""),
               size=getattr(row, "size_bytes", 0))
    return target


def _model_fields(model, folder: Path) -> dict:
    """The JobSpec fields that describe an uploaded model, its file copied into the job's folder."""
    return {"model_path": str(_copy_local(model.file, folder / "model.bin")), "input_shape": model.input_shape,
            "input_dtype": model.input_dtype, "architecture": model.architecture or None}


def _outputs(out_dir: Path, names) -> dict[str, Path]:
    """The sandbox names its outputs; still, only plain files directly inside out_dir are taken."""
    files = {}
    for name in names:
        path = out_dir / str(name)
        if not OUTPUT_NAME.fullmatch(str(name)) or path.is_symlink() or not path.is_file():
            raise SandboxError(f"The job produced an unexpected output name {str(name)[:80]!r}.")
        files[str(name)] = path
    return files


def _limits(seconds: int) -> Limits:
    return Limits(wall_seconds=seconds, memory_mb=settings.SANDBOX_MEMORY_MB)


@app.task(name=INSPECT_MODEL)
def inspect_model(model_id: int) -> None:
    model = selectors.model_pending(model_id=model_id)
    if model is None:
        return  # already inspected, or deleted
    with tempfile.TemporaryDirectory(prefix="slimforge-inspect-") as folder:
        try:
            spec = JobSpec.build(action="inspect", **_model_fields(model, Path(folder)))
            info = run_sandboxed(spec, limits=_limits(settings.SANDBOX_INSPECT_SECONDS), on_event=lambda e: None)
        except (SpecError, SandboxError) as exc:
            services.model_inspection_failed(model_id=model_id, error=str(exc))
            return
    info["size_bytes"] = model.size_bytes  # the stored file's size, not the sandbox copy's
    services.model_inspection_succeeded(model_id=model_id, info=info)


@app.task(name=PREPARE_DATASET)
def prepare_dataset(dataset_id: int) -> None:
    dataset = selectors.dataset_pending(dataset_id=dataset_id)
    if dataset is None:
        return
    with tempfile.TemporaryDirectory(prefix="slimforge-dataset-") as folder:
        out_dir = Path(folder) / "out"
        out_dir.mkdir()
        source = _copy_local(dataset.source, Path(folder) / "source.bin") if dataset.source else ""
        try:
            spec = JobSpec.build(action="dataset", dataset_source=str(source), dataset_kind=dataset.kind,
                                 dataset_options=dataset.options, out_dir=str(out_dir))
            info = run_sandboxed(spec, limits=_limits(settings.SANDBOX_INSPECT_SECONDS), on_event=lambda e: None)
            services.dataset_files_store(dataset_id=dataset_id, files=_outputs(out_dir, info.get("files", [])))
        except (SpecError, SandboxError) as exc:
            services.dataset_import_failed(dataset_id=dataset_id, error=str(exc))
            return
    services.dataset_import_succeeded(dataset_id=dataset_id, info=info)


@app.task(name=RUN_EXPERIMENT, bind=True)
def run_experiment(self, experiment_id: int) -> None:
    # The Celery node name (queue@host), as the heartbeat names the worker, so the Workers page finds its job.
    worker = self.request.hostname or socket.gethostname()
    # Each database step is retried through a brief outage (tasks.db_retry); the job itself needs no database.
    if retrying(lambda: _left_for_bigger_device(experiment_id, worker), what=f"placing experiment {experiment_id}"):
        return
    attempt = retrying(lambda: services.experiment_claim(experiment_id=experiment_id, worker=worker),
                       what=f"claiming experiment {experiment_id}")
    if not attempt:
        return  # finished, cancelled, or a live run of it goes on elsewhere
    try:
        experiment = retrying(lambda: selectors.experiment_to_run(experiment_id=experiment_id), what="reading the job")
        bridge = EventBridge(experiment_id)
        sampler = _sampler_for(experiment, bridge)
        bridge.emit(events.stage_event("prepare"))
        soft_s, hard_s = time_limits(experiment.recipe)
        cancel = Cancel(lambda: _cancel_requested(experiment_id), grace_s=settings.CANCEL_GRACE_S,
                        soft_limit_s=soft_s)
    except Exception as exc:  # a bug before the job started: it fails now, rather than stay running and be reaped
        log.exception("experiment %s could not start", experiment_id)
        reason = _internal_error(exc)
        retrying(lambda: services.experiment_finish(experiment_id=experiment_id, status=events.FAILED,
                                                    error=reason, attempt=attempt),
                 what=f"writing the outcome of experiment {experiment_id}")
        return
    status, error, summary = events.SUCCEEDED, "", None
    try:
        sampler.start()
        summary = _run_recipe(experiment, bridge, sampler, cancel, hard_s, attempt)
    except JobCancelled as exc:
        if cancel.timed_out:
            status, error = events.FAILED, (
                f"The job ran past its soft time limit of {soft_s:.0f} s and stopped at a step boundary (the hard "
                f"limit is {hard_s} s: SLIMFORGE_RUN_SECONDS_{experiment.recipe.upper()} or SLIMFORGE_RUN_SECONDS).")
        else:
            status = events.CANCELLED
            bridge.emit(events.log_event(str(exc)))
    except (SandboxError, multihost.HostSetupError) as exc:
        status, error = events.FAILED, str(exc)
    except OSError as exc:
        log.exception("experiment %s failed", experiment_id)
        status, error = events.FAILED, _os_error(exc)
    except Exception as exc:
        log.exception("experiment %s failed", experiment_id)
        status, error = events.FAILED, _internal_error(exc)
    summary = _with_telemetry(summary, sampler)
    retrying(lambda: bridge.flush(raise_errors=True), what="writing the job's last events")
    if not retrying(lambda: services.experiment_finish(experiment_id=experiment_id, status=status, error=error,
                                                       summary=summary, attempt=attempt),
                    what=f"writing the outcome of experiment {experiment_id}"):
        log.warning("experiment %s: attempt %s ended after another took over; its outcome is dropped",
                    experiment_id, attempt)
    if status in (events.SUCCEEDED, events.CANCELLED):  # a failed job keeps its checkpoint for a redelivery
        shutil.rmtree(_checkpoint_dir(experiment_id), ignore_errors=True)


@app.task(name=JOIN_EXPERIMENT, bind=True, max_retries=None)
def join_experiment(self, experiment_id: int, attempt: int, node: int, count: int, address: str, port: int,
                    secret: str) -> None:
    """Host `node` of a multi-host experiment's run `attempt`: lend this worker's devices to the first host's rounds
    until the job ends (optimizers.training.follower). The job's outcome is the first host's to record."""
    still_on = functools.partial(selectors.experiment_run_current, experiment_id=experiment_id, attempt=attempt)
    if not retrying(still_on, what=f"reading experiment {experiment_id}"):
        return  # ended, cancelled, or taken over by another attempt: nothing to join
    if not multihost.takes_part():  # not this worker's to take: back to the queue, for one that takes part
        raise self.retry(countdown=1)
    experiment = retrying(lambda: selectors.experiment_to_run(experiment_id=experiment_id), what="reading the job")
    # This host's resources and GPUs join the experiment's telemetry, named host<N>/... (multihost.on_host).
    bridge = EventBridge(experiment_id)
    sampler = Sampler(interval_s=experiment.telemetry_interval_s or settings.TELEMETRY_INTERVAL_S,
                      emit=multihost.on_host(node + 1, bridge.emit))
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="slimforge-host-") as folder:
        try:
            hosts = multihost.further_host(node, count, address, port, secret)
            spec = JobSpec.build(action="ranks", out_dir=folder, hosts=hosts)
            cancel = Cancel(lambda: not _answer_or(still_on, True), grace_s=settings.CANCEL_GRACE_S)
            result = run_sandboxed(spec, limits=_limits(time_limits(experiment.recipe)[1]),
                                   on_event=lambda event: None, on_sample=sampler.tick,
                                   sample_interval=sampler.interval_s, on_tick=bridge.tick, cancel=cancel)
            log.info("experiment %s: host %s of %s ran %s rounds of replicas on %s %s", experiment_id, node + 1,
                     count, result["rounds"], result["devices"], result["kind"])
        except (SpecError, SandboxError, JobCancelled, multihost.HostSetupError) as exc:
            log.warning("experiment %s: host %s of %s left the job: %s", experiment_id, node + 1, count, exc)
        finally:
            # The job's summary is the first host's; this host's (its GPUs' energy) is kept beside it.
            telemetry = (_with_telemetry(None, sampler) or {}).get("telemetry")
            retrying(lambda: bridge.flush(raise_errors=True), what="writing the host's last telemetry")
            if telemetry is not None:
                retrying(lambda: services.experiment_host_telemetry(
                    experiment_id=experiment_id, attempt=attempt, host=node + 1, telemetry=telemetry),
                    what="keeping the host's telemetry summary")


def _answer_or(question, fallback: bool) -> bool:
    """Polled about once a second; while the database is unreachable, the answer is `fallback`."""
    try:
        return question()
    except DB_ERRORS:
        forget_connection()
        return fallback


def _left_for_bigger_device(experiment_id: int, worker: str) -> bool:
    """A queued job whose memory estimate exceeds what this worker has free goes back for a worker with room."""
    experiment = selectors.experiment_queued(experiment_id=experiment_id)
    note = placement.does_not_fit(experiment, worker) if experiment is not None else ""
    if not note:
        return False
    log.info("experiment %s: %s", experiment_id, note)
    return services.experiment_left_for_bigger_device(experiment_id=experiment_id, note=note)


def time_limits(recipe: str) -> tuple[float, int]:
    """(soft, hard) seconds for a job of `recipe`: asked to stop at its next step at the soft limit, killed at the
    hard one (SLIMFORGE_RUN_SECONDS_<RECIPE>, else SLIMFORGE_RUN_SECONDS)."""
    hard_s = settings.RUN_SECONDS_BY_RECIPE.get(recipe, settings.SANDBOX_RUN_SECONDS)
    return hard_s - min(settings.SOFT_LIMIT_BEFORE_MAX_S, hard_s // 10), hard_s


def _internal_error(exc: Exception) -> str:
    return f"Internal error: {type(exc).__name__}: {exc}"[:2000]


def _os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return ("No space left on device while the worker stored the results; nothing of them was kept. Free space "
                "for the worker's files (its media storage and TMPDIR), then run it again.")
    return _internal_error(exc)


def _cancel_requested(experiment_id: int) -> bool:
    """Polled about once a second; while the database is unreachable, the answer is "not yet"."""
    return _answer_or(functools.partial(selectors.experiment_cancel_requested, experiment_id=experiment_id), False)


def _sampler_for(experiment, bridge: EventBridge) -> Sampler:
    interval = experiment.telemetry_interval_s or settings.TELEMETRY_INTERVAL_S
    sampler = Sampler(interval_s=interval, emit=bridge.emit)
    bridge.watch(sampler.observe)  # it follows the stages, to attribute energy to them
    return sampler


def _with_telemetry(summary: dict | None, sampler: Sampler) -> dict | None:
    """A failed job keeps its telemetry too (its summary is then only that)."""
    try:
        telemetry = sampler.finish()
    except Exception:  # the job's own result matters more than the account of what it cost
        log.exception("telemetry summary failed")
        return summary
    return {**(summary or {}), "telemetry": telemetry}


def _checkpoint_dir(experiment_id: int) -> Path:
    return Path(settings.CHECKPOINT_ROOT) / str(experiment_id)


def _dataset_path(experiment, folder: Path) -> str | None:
    if experiment.dataset is None:
        return None
    prepared = selectors.dataset_prepared_file(dataset=experiment.dataset)
    return str(_copy_local(prepared, folder / "dataset.npz"))


def _referenced_models(experiment, folder: Path) -> dict[str, dict]:
    """Copies of the other models the settings name (a distill student), checked again: still the owner's, ready."""
    models = {}
    for role, model_id in parse_config(experiment.recipe, experiment.config).referenced_models().items():
        model = selectors.model_of_owner(owner_id=experiment.owner_id, model_id=model_id)
        if model is None:
            raise SandboxError(f"The {role} model #{model_id} is no longer one of your ready models.")
        models[role] = {"path": str(_copy_local(model.file, folder / f"{role}.bin")),
                        "architecture": model.architecture or None}
    return models


def _run_recipe(experiment, bridge: EventBridge, sampler: Sampler, cancel: Cancel, hard_s: int, attempt: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="slimforge-run-") as folder:
        out_dir = Path(folder) / "out"
        out_dir.mkdir()
        spec = JobSpec.build(action="run", **_model_fields(experiment.model, Path(folder)), recipe=experiment.recipe,
                             config=experiment.config, out_dir=str(out_dir),
                             dataset_path=_dataset_path(experiment, Path(folder)),
                             checkpoint_dir=str(_checkpoint_dir(experiment.pk)),
                             models=_referenced_models(experiment, Path(folder)),
                             hosts=multihost.first_host(experiment, attempt) if experiment.hosts > 1 else None)
        summary = run_sandboxed(spec, limits=_limits(hard_s), on_event=bridge.emit,
                                on_sample=sampler.tick, sample_interval=sampler.interval_s,
                                on_tick=bridge.tick, cancel=cancel)
        bridge.emit(events.stage_event("store"))
        files = _outputs(out_dir, summary.get("artifacts", []))
        retrying(lambda: services.artifacts_store(experiment_id=experiment.pk, files=files),
                 what="storing the results")  # all or none, so a retry starts clean
    return summary
