"""Celery task entry points. They take ids, run the model only inside the sandbox, and record through services."""
import logging
import re
import shutil
import socket
import tempfile
from pathlib import Path

from django.conf import settings

from tasks.bridge import EventBridge
from tasks.celery import INSPECT_MODEL, RUN_EXPERIMENT, app
from tasks.sandbox import Limits, SandboxError, run_sandboxed
from webapp import services
from webapp.models import Experiment, UploadedModel

log = logging.getLogger(__name__)
ARTIFACT_NAME = re.compile(r"[a-z0-9_]{1,40}\.[a-z0-9]{1,8}")


def _copy_local(field_file, folder: Path) -> Path:
    """Any storage backend: the sandbox reads a local copy under a fixed name."""
    target = folder / "model.bin"
    with field_file.open("rb") as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
    return target


def _model_spec(model: UploadedModel, path: Path) -> dict:
    return {"model_path": str(path), "input_shape": model.input_shape, "input_dtype": model.input_dtype}


@app.task(name=INSPECT_MODEL)
def inspect_model(model_id: int) -> None:
    model = UploadedModel.objects.filter(pk=model_id, status=UploadedModel.Status.PENDING).first()
    if model is None:
        return  # already inspected, or deleted
    limits = Limits(wall_seconds=settings.SANDBOX_INSPECT_SECONDS, memory_mb=settings.SANDBOX_MEMORY_MB)
    with tempfile.TemporaryDirectory(prefix="slimforge-inspect-") as folder:
        spec = {"action": "inspect", **_model_spec(model, _copy_local(model.file, Path(folder)))}
        try:
            info = run_sandboxed(spec, limits=limits, on_event=lambda record: None)
        except SandboxError as exc:
            services.model_inspection_failed(model_id=model_id, error=str(exc))
            return
    info["size_bytes"] = model.size_bytes  # the stored file's size, not the sandbox copy's
    services.model_inspection_succeeded(model_id=model_id, info=info)


@app.task(name=RUN_EXPERIMENT)
def run_experiment(experiment_id: int) -> None:
    if not services.experiment_claim(experiment_id=experiment_id, worker=socket.gethostname()):
        return  # another delivery of this task already claimed it
    experiment = Experiment.objects.select_related("model").get(pk=experiment_id)
    bridge = EventBridge(experiment_id)
    bridge.emit({"kind": "stage", "name": "prepare"})
    try:
        summary, files = _run_recipe(experiment, bridge)
        bridge.emit({"kind": "stage", "name": "store"})
        bridge.flush()
        services.experiment_finish(experiment_id=experiment_id, status=Experiment.Status.SUCCEEDED,
                                   summary=summary)
    except SandboxError as exc:
        bridge.flush()
        services.experiment_finish(experiment_id=experiment_id, status=Experiment.Status.FAILED, error=str(exc))
    except Exception as exc:
        log.exception("experiment %s failed", experiment_id)
        bridge.flush()
        services.experiment_finish(experiment_id=experiment_id, status=Experiment.Status.FAILED,
                                   error=f"Internal error: {type(exc).__name__}: {exc}"[:2000])


def _artifact_file(out_dir: Path, name) -> Path:
    """The sandbox names its outputs; still, only plain files directly inside out_dir are taken."""
    path = out_dir / str(name)
    if not ARTIFACT_NAME.fullmatch(str(name)) or path.is_symlink() or not path.is_file():
        raise SandboxError(f"The job produced an unexpected artifact name {str(name)[:80]!r}.")
    return path


def _run_recipe(experiment: Experiment, bridge: EventBridge) -> tuple[dict, list]:
    limits = Limits(wall_seconds=settings.SANDBOX_RUN_SECONDS, memory_mb=settings.SANDBOX_MEMORY_MB)
    with tempfile.TemporaryDirectory(prefix="slimforge-run-") as folder:
        out_dir = Path(folder) / "out"
        out_dir.mkdir()
        spec = {"action": "run", **_model_spec(experiment.model, _copy_local(experiment.model.file, Path(folder))),
                "recipe": experiment.recipe, "config": experiment.config, "out_dir": str(out_dir)}
        summary = run_sandboxed(spec, limits=limits, on_event=bridge.emit, on_sample=bridge.resource,
                                sample_interval=settings.TELEMETRY_INTERVAL_S, on_tick=bridge.tick)
        files = {name: _artifact_file(out_dir, name) for name in summary.get("artifacts", [])}
        artifacts = services.artifacts_store(experiment_id=experiment.pk, files=files)
    return summary, artifacts
