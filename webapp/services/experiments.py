"""Experiments: validated before queueing, claimed atomically by one worker, finished with their artifacts."""
import dataclasses

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from optimizers import events
from optimizers.configs import ConfigError, parse_config
from optimizers.configs.devices import ANY, shape_error
from optimizers.data.compat import compatibility
from tasks.celery import RUN_EXPERIMENT
from webapp.clock import ClockTimestamp
from webapp.models import Artifact, Dataset, Experiment, OutboxMessage, UploadedModel
from webapp.services.events import events_record
from webapp.services.files import save_rows_with_files, sha256_of_path
from webapp.services.lineage import chain_step_finished
from webapp.services.liveness import run_is_live, worker_lost_error
from webapp.services.outbox import ACTIVE, lock_outbox_of, outbox_add, send_after_commit

TELEMETRY_INTERVAL_RANGE_S = (0.2, 10.0)  # as SLIMFORGE_TELEMETRY_MS allows for the worker's default


def _parse_recipe_config(recipe: str, config):
    try:
        return parse_config(recipe, config if config is not None else {})
    except ConfigError as exc:
        key = "recipe" if exc.field == "recipe" else f"config.{exc.field}"
        raise ValidationError({key: exc.message}) from None


def _check_model(model: UploadedModel, recipe: str, config) -> None:
    if model.status != UploadedModel.Status.READY:
        raise ValidationError({"model": f"The model is {model.status}; only a ready model can be optimized."})
    applicability = model.info.get("recipes", {}).get(recipe, {"applicable": True})
    if not applicability.get("applicable", True):
        raise ValidationError({"recipe": applicability.get("reason") or "This recipe does not apply."})
    try:
        config.check_model(input_shape=model.input_shape, input_dtype=model.input_dtype,
                           output_shape=model.info.get("output_shape"))
    except ConfigError as exc:
        raise ValidationError({f"config.{exc.field}": exc.message}) from None
    field = type(config).variant_field
    verdict = applicability.get("variants", {}).get(getattr(config, field, None)) if field else None
    if verdict and not verdict.get("applicable", True):
        raise ValidationError({f"config.{field}": verdict.get("reason") or "This variant does not apply."})


def _check_referenced_models(owner, config) -> None:
    """Every other model the settings name (a distill student) is the owner's, ready, and trainable: a state dict
    uploaded with its architecture. Another user's model reads exactly like a missing one."""
    for role, model_id in config.referenced_models().items():
        key = f"config.{role}_model"
        model = UploadedModel.objects.filter(owner=owner, pk=model_id).first()
        if model is None:
            raise ValidationError({key: f"You have no model #{model_id}."})
        if model.status != UploadedModel.Status.READY:
            raise ValidationError({key: f"Model #{model_id} is {model.status}; only a ready model can be used."})
        if model.format != "safetensors" or not model.architecture:
            raise ValidationError({key: f"Model #{model_id} is {model.format or 'not a state dict'}: the {role} "
                                        "is trained and saved, so it must be a state dict (safetensors) uploaded "
                                        "with its architecture."})


def _check_dataset(dataset: Dataset | None, model: UploadedModel, config) -> None:
    if dataset is None:
        reason = config.needs_dataset()
        if reason:
            raise ValidationError({"dataset": f"Choose a dataset: {reason}."})
        return
    if dataset.status != Dataset.Status.READY:
        raise ValidationError({"dataset": f"The dataset is {dataset.status}; only a ready dataset can be used."})
    if config.needs_labels() and not dataset.info.get("has_labels"):
        raise ValidationError({"dataset": f"The dataset has no labels, and {config.needs_dataset()}."})
    reason = compatibility(dataset.info.get("sample_shape") or [], model.input_shape, model.input_dtype,
                           dataset.info.get("dtype") or "float32", _folder_files(model))
    if reason:
        raise ValidationError({"dataset": f"The dataset does not fit the model: {reason}"})


def _folder_files(model: UploadedModel) -> list[str] | None:
    """The tokenizer files of a Hugging Face folder model, as its inspection listed them; None for other formats."""
    if model.format != "hf":
        return None
    return list(((model.info or {}).get("hf") or {}).get("tokenizer") or [])


def _check_telemetry_interval(seconds) -> float | None:
    if seconds is None:
        return None
    low, high = TELEMETRY_INTERVAL_RANGE_S
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not low <= seconds <= high:
        raise ValidationError({"telemetry_interval_s": f"Give a number of seconds from {low:g} to {high:g}, "
                                                       "or leave it out for the worker's default."})
    return float(seconds)


def _check_device_shape(shape, recipe: str, config) -> str:
    shape = ANY if shape in (None, "") else shape
    reason = shape_error(shape, recipe, config.to_dict()) if isinstance(shape, str) else "Give the device as text."
    if reason:
        raise ValidationError({"device_shape": reason})
    return shape


def _check_hosts(hosts, shape: str, config) -> int:
    """How many workers train the job together (DDP across hosts). Several need one device shape, so that every host
    gives the same devices, and a recipe that trains (whose settings have `ranks`)."""
    hosts = 1 if hosts is None else hosts
    if isinstance(hosts, bool) or not isinstance(hosts, int) or not 1 <= hosts <= settings.MAX_HOSTS:
        raise ValidationError({"hosts": f"Give a whole number of hosts from 1 to {settings.MAX_HOSTS}."})
    if hosts == 1:
        return hosts
    if shape == ANY:
        raise ValidationError({"hosts": "Training on several hosts needs a device shape other than any (cpu, gpu, "
                                        "gpu-xN): every host must give the same devices."})
    if "ranks" not in {field.name for field in dataclasses.fields(config)}:
        raise ValidationError({"hosts": "Training on several hosts needs a recipe that trains (prune with "
                                        "fine-tuning, distill)."})
    return hosts


class QuotaExceeded(ValidationError):
    """The user has as many unfinished experiments as one user may (settings.USER_MAX_QUEUED)."""


def _check_quota(owner) -> int:
    """How many unfinished experiments `owner` has; too many is refused."""
    unfinished = Experiment.objects.filter(owner=owner, status__in=ACTIVE).count()
    if unfinished >= settings.USER_MAX_QUEUED:
        raise QuotaExceeded(f"You have {unfinished} experiments queued or running, the most one user may have; "
                            "wait for some to finish, or cancel some, then submit again.")
    return unfinished


def experiment_create(*, owner, model: UploadedModel, recipe: str, config: dict | None,
                      dataset: Dataset | None = None, telemetry_interval_s: float | None = None,
                      rerun_of: Experiment | None = None, chain_step: dict | None = None,
                      device_shape: str = ANY, hosts: int = 1) -> Experiment:
    """Validate everything, then queue. `rerun_of`: the experiment this one is a re-run of, with edits;
    `chain_step`: {"chain", "chain_index"} of the chain step it runs (webapp.services.chains); `device_shape`: the
    worker it asks for (optimizers.configs.devices), any by default; `hosts`: how many workers of that shape train
    it together (1 by default)."""
    if model.owner_id != owner.pk or (dataset is not None and dataset.owner_id != owner.pk):
        raise ValidationError({"model": "No such model or dataset."})
    if rerun_of is not None and rerun_of.owner_id != owner.pk:
        raise ValidationError({"rerun_of": "No such experiment."})
    interval = _check_telemetry_interval(telemetry_interval_s)
    parsed = _parse_recipe_config(recipe, config)
    _check_model(model, recipe, parsed)
    _check_referenced_models(owner, parsed)
    _check_dataset(dataset, model, parsed)
    shape = _check_device_shape(device_shape, recipe, parsed)
    hosts = _check_hosts(hosts, shape, parsed)
    unfinished = _check_quota(owner)
    with transaction.atomic():
        experiment = Experiment.objects.create(owner=owner, model=model, dataset=dataset, recipe=recipe,
                                               config=parsed.to_dict(), telemetry_interval_s=interval,
                                               rerun_of=rerun_of, device_shape=shape, hosts=hosts,
                                               **(chain_step or {}))
        # With every slot of the owner's taken, this one waits its turn: it goes when one of those ends (or at the
        # next heartbeat's sweep), so a long queue's submits skip the sending transaction.
        outbox_add(RUN_EXPERIMENT, experiment.pk, owner.pk, send=unfinished < settings.USER_MAX_RUNNING)
    return experiment


def experiment_claim(*, experiment_id: int, worker: str) -> int:
    """Atomic: the attempt number this delivery runs (1, 2, ...), or 0 when it must not run.

    A queued experiment is claimed by the first delivery. A running one is taken over only when its run is no
    longer live (webapp.services.recovery): its worker died or lost the pool process, and the job resumes from its
    last fine-tuning checkpoint. A duplicate delivery, or a redelivery while the first run lives, gets 0. Past
    SLIMFORGE_JOB_ATTEMPTS starts the experiment fails with "worker lost" instead.
    """
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().filter(pk=experiment_id).first()
        if experiment is None or experiment.status not in (Experiment.Status.QUEUED, Experiment.Status.RUNNING):
            return 0
        if experiment.status == Experiment.Status.RUNNING:
            if run_is_live(experiment):
                return 0
            if experiment.cancel_requested_at:  # cancelled while nobody ran it: it ends so, not started again
                experiment_finish(experiment_id=experiment_id, status=Experiment.Status.CANCELLED)
                return 0
        if experiment.attempt >= settings.JOB_ATTEMPTS:
            experiment_finish(experiment_id=experiment_id, status=Experiment.Status.FAILED,
                              error=worker_lost_error(experiment.attempt))
            return 0
        attempt = experiment.attempt + 1
        Experiment.objects.filter(pk=experiment_id).update(
            status=Experiment.Status.RUNNING, worker=worker[:255], started_at=ClockTimestamp(), attempt=attempt,
            placement_note="")
        # A training job then resumes from its last checkpoint and says so in its log; others start over.
        note = f"attempt {attempt} of {settings.JOB_ATTEMPTS}: the previous worker was lost" if attempt > 1 else ""
        events_record(experiment_id=experiment_id, records=[events.status_event(events.RUNNING, note=note)])
    return attempt


def experiment_left_for_bigger_device(*, experiment_id: int, note: str) -> bool:
    """A worker found no room for this queued experiment (tasks.placement): `note` tells its owner why, and its job
    goes back to the outbox, whose next sweep sends it to its queue again for a worker with room. False when it is
    no longer queued (claimed elsewhere meanwhile, cancelled, deleted)."""
    owner_id = Experiment.objects.filter(pk=experiment_id).values_list("owner_id", flat=True).first()
    if owner_id is None:
        return False
    with transaction.atomic():
        # The worker got this job from a sweep that may not have committed yet: its message, already sent, would still
        # read as waiting here, and the job be left with none (seen under load, the job then queued for ever).
        lock_outbox_of(owner_id)
        experiment = (Experiment.objects.select_for_update().filter(pk=experiment_id, status=Experiment.Status.QUEUED)
                      .first())
        if experiment is None:
            return False
        Experiment.objects.filter(pk=experiment_id).update(placement_note=note[:500])
        if not OutboxMessage.objects.filter(task=RUN_EXPERIMENT, object_id=experiment_id).exists():
            outbox_add(RUN_EXPERIMENT, experiment_id, experiment.owner_id, send=False)
    return True


def experiment_rerun(*, owner, source: Experiment, config_changes: dict | None = None,
                     dataset: Dataset | None | object = ..., telemetry_interval_s: float | None | object = ...,
                     device_shape: str | None = None, hosts: int | None = None) -> Experiment:
    """A new experiment on `source`'s model with its settings, `config_changes` laid over them; the dataset,
    telemetry interval, device and hosts stay the source's unless given (None: none, or any device)."""
    if not isinstance(config_changes or {}, dict):
        raise ValidationError({"config": "Give the settings to change as a JSON object."})
    return experiment_create(
        owner=owner, model=source.model, recipe=source.recipe, config={**source.config, **(config_changes or {})},
        dataset=source.dataset if dataset is ... else dataset,
        telemetry_interval_s=source.telemetry_interval_s if telemetry_interval_s is ... else telemetry_interval_s,
        rerun_of=source, device_shape=source.device_shape if device_shape is None else device_shape,
        hosts=source.hosts if hosts is None else hosts)


def experiment_finish(*, experiment_id: int, status: str, error: str = "", summary: dict | None = None,
                      attempt: int | None = None) -> bool:
    """The outcome of a run; False when it was not written. An experiment that already ended (cancelled while
    queued, say) keeps its outcome, and with `attempt` only that attempt may write it: a run whose experiment was
    taken over by a later attempt has no say."""
    fields = {"status": status, "error": error, "finished_at": ClockTimestamp()}
    if summary is not None:
        fields["summary"] = summary
    if status == Experiment.Status.SUCCEEDED:
        fields["progress"] = 1.0
    rows = Experiment.objects.filter(pk=experiment_id).exclude(status__in=Experiment.FINISHED)
    if attempt is not None:
        rows = rows.filter(attempt=attempt)
    with transaction.atomic():
        updated = rows.update(**fields)
        if updated:
            note = _cancel_note(experiment_id) if status == Experiment.Status.CANCELLED else ""
            events_record(experiment_id=experiment_id, records=[events.status_event(status, error, note=note)])
            owner_id, chain_id = Experiment.objects.values_list("owner_id", "chain_id").get(pk=experiment_id)
            if chain_id is not None:
                chain_step_finished(experiment_id)
            transaction.on_commit(lambda: send_after_commit(owner_id))  # the owner's next job may go now
    return bool(updated)


def experiment_host_telemetry(*, experiment_id: int, attempt: int, host: int, telemetry: dict) -> bool:
    """A further host's telemetry summary of run `attempt` (its GPUs' energy, say), kept beside the first host's;
    False when that run is no longer the experiment's (a later attempt took over, or it was deleted). The hosts
    leave at about the same time, so each writes under the row's lock."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().filter(pk=experiment_id, attempt=attempt).first()
        if experiment is None:
            return False
        kept = {key: value for key, value in (experiment.hosts_telemetry or {}).items()
                if isinstance(value, dict) and value.get("attempt") == attempt}
        kept[str(host)] = {**telemetry, "attempt": attempt}
        Experiment.objects.filter(pk=experiment_id).update(hosts_telemetry=kept)
    return True


def experiment_cancel(*, user, experiment_id: int) -> Experiment:
    """Cancel one of `user`'s experiments: a queued one ends now, a running one is asked to stop at its next step
    (the worker polls for it, and stops the job hard after a grace period). Raises Experiment.DoesNotExist for
    anything not theirs, ValidationError when there is nothing left to cancel."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment_id, owner=user)
        if experiment.is_finished:
            raise ValidationError(f"Experiment #{experiment.pk} already {experiment.status}; there is nothing "
                                  "to cancel.")
        if experiment.cancel_requested_at:
            return experiment  # asked already: the worker is stopping it
        now = timezone.now()
        Experiment.objects.filter(pk=experiment.pk).update(cancel_requested_at=now, cancelled_by=user)
        if experiment.status == Experiment.Status.QUEUED:
            # Its task may still be in the queue: the worker that takes it finds it no longer claimable.
            experiment_finish(experiment_id=experiment.pk, status=Experiment.Status.CANCELLED)
        else:
            events_record(experiment_id=experiment.pk, records=[events.log_event(
                f"Cancel requested by {user.get_username()}: the job stops at its next step.")])
    experiment.refresh_from_db()
    return experiment


def _cancel_note(experiment_id: int) -> str:
    experiment = Experiment.objects.select_related("cancelled_by").get(pk=experiment_id)
    who = experiment.cancelled_by.get_username() if experiment.cancelled_by else "its owner"
    return f"cancelled by {who}"


def artifacts_store(*, experiment_id: int, files: dict) -> list[Artifact]:
    """Store finished files ({name: local path}) through the storage API; all of them or none."""
    rows = []
    for name, path in files.items():
        artifact = Artifact(experiment_id=experiment_id, name=name, sha256=sha256_of_path(path),
                            size_bytes=path.stat().st_size)
        rows.append((artifact, "file", path))
    return save_rows_with_files(rows)
