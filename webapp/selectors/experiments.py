"""Reads of experiments, their events, series and artifacts. Every query starts from the user (404 otherwise)."""
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404

from optimizers.configs.devices import GPU_ANY, cuda_reason, queue_of
from optimizers.configs.memory import job_memory_mb
from tasks.celery import RUN_EXPERIMENT
from webapp.models import Artifact, Event, Experiment, OutboxMessage, UploadedModel
from webapp.selectors import series
from webapp.selectors.comparison import comparison_of
from webapp.selectors.devices import HostPool, largest_device_mb, served_queues
from webapp.selectors.results import result_filter, result_order, with_results, with_variant

EVENTS_PAGE = 5000


def experiment_list_for(*, user, model: UploadedModel | None = None):
    experiments = with_variant(_with_dispatch(Experiment.objects.filter(owner=user).select_related("model")))
    return experiments.filter(model=model) if model is not None else experiments


def _with_dispatch(experiments):
    """Whether each experiment still waits in the outbox (webapp.services.outbox), and why its last send failed."""
    waiting = OutboxMessage.objects.filter(task=RUN_EXPERIMENT, object_id=OuterRef("pk"))
    return experiments.annotate(in_outbox=Exists(waiting),
                                outbox_error=Subquery(waiting.order_by("-pk").values("last_error")[:1]))


def waiting_note(experiment: Experiment) -> str:
    """Why a queued experiment has not gone to the workers yet, in words for its owner ("" when it has)."""
    if experiment.status != Experiment.Status.QUEUED:
        return ""
    if getattr(experiment, "outbox_error", ""):
        return ("The job queue is unreachable right now; the experiment is saved and is sent to the workers as "
                f"soon as the queue is back. ({experiment.outbox_error})")
    queue = queue_of(experiment.device_shape, experiment.recipe, experiment.config,
                     settings.CELERY_TASK_DEFAULT_QUEUE)
    if experiment.placement_note:  # a worker left it for a bigger device
        return experiment.placement_note + _no_room_anywhere(experiment, queue)
    if not getattr(experiment, "in_outbox", False):
        return ""  # at the workers
    if experiment.hosts > 1:
        pool = HostPool.now()
        if pool.free(queue) < experiment.hosts:
            return _hosts_note(experiment, pool.online(queue), pool.held_on(queue))
    if queue not in served_queues():
        gpu = cuda_reason(experiment.recipe, experiment.config)
        if queue == GPU_ANY:
            return (f"Waiting for a GPU worker: {gpu}, and no worker with a GPU is online. It starts when one joins "
                    "(or cancel it).")
        return (f"Waiting for a worker of the shape it asks for ({experiment.device_shape}): none is online. It "
                "starts when one joins (or cancel it, or run it again on any device).")
    return (f"Waiting for a slot: at most {settings.USER_MAX_RUNNING} of your experiments go to the workers at "
            "once; this one goes when an earlier one ends.")


def _hosts_note(experiment: Experiment, online: int, held: int) -> str:
    """Why a job on several hosts waits: too few live workers of its shape take multi-host jobs, or other multi-host
    jobs hold them (webapp.selectors.devices.HostPool)."""
    count = "none is" if online == 0 else "1 is" if online == 1 else f"{online} are"
    waiting = (f"Waiting for {experiment.hosts} workers of shape {experiment.device_shape} that take multi-host jobs "
               f"(SLIMFORGE_WORKER_HOST_ADDRESS): {count} online")
    if held and online >= experiment.hosts:
        return (f"{waiting}, and other multi-host jobs hold {min(held, online)} of them. It starts when enough are "
                "free (or cancel it, or run it again on fewer hosts).")
    return f"{waiting}. It starts when enough join (or cancel it, or run it again on fewer hosts)."


def _no_room_anywhere(experiment: Experiment, queue: str) -> str:
    """When no live worker of the job's queue could ever hold it, a sentence that says so ("" otherwise)."""
    needed = job_memory_mb(experiment.recipe, experiment.config, experiment.model.params or 0)
    largest = largest_device_mb(queue)
    if largest is None or needed <= largest:
        return ""
    return (f" No live worker that serves {queue} has that much: the largest has {largest:,.0f} MB, so it runs only "
            "once a bigger one joins.")


def experiment_search_for(*, user, status: str | None = None, recipe: str | None = None,
                          model_id: int | None = None, q: str = "", ids: list[int] | None = None,
                          order: str = "-created", limits: dict[str, float] | None = None):
    """One owner's experiments, filtered as the list page asks (each filter has its own index), in `order`
    (webapp.selectors.results: newest first, or by a result figure with unfinished runs last); `limits` keeps the
    runs whose figure is within each limit ({"size_ratio": 0.5, "accuracy_drop": 1.0})."""
    experiments = with_results(experiment_list_for(user=user))
    if status:
        experiments = experiments.filter(status=status)
    if recipe:
        experiments = experiments.filter(recipe=recipe)
    if model_id is not None:
        experiments = experiments.filter(model_id=model_id)
    if ids is not None:
        experiments = experiments.filter(pk__in=ids)
    if q:
        experiments = experiments.filter(_experiment_text_match(q))
    for key, limit in (limits or {}).items():
        experiments = experiments.filter(result_filter(key, limit))
    return experiments.order_by(*result_order(order))


def _experiment_text_match(q: str) -> Q:
    """`#12` is experiment 12; other text matches the experiment's or the model's name, notes or tags (a tag
    exactly), the recipe or its variant (and a bare id)."""
    number = q.removeprefix("#")
    by_id = Q(pk=int(number)) if number.isascii() and number.isdigit() and len(number) < 19 else None
    if q.startswith("#") and by_id is not None:
        return by_id
    tag = q.strip().lower()
    text = (Q(model__name__icontains=q) | Q(recipe__icontains=q) | Q(config__variant__icontains=q)
            | Q(config__method__icontains=q) | Q(name__icontains=q) | Q(notes__icontains=q)
            | Q(model__notes__icontains=q) | Q(tags__contains=[tag]) | Q(model__tags__contains=[tag]))
    return text | by_id if by_id is not None else text


def experiments_compared_for(*, user, ids: list[int]) -> list[Experiment]:
    """The experiments to compare, in the order asked; one that is not the user's makes the whole answer a 404."""
    found = {e.pk: e for e in experiment_list_for(user=user).filter(pk__in=ids).select_related("dataset")
             .prefetch_related("artifacts")}
    if len(found) != len(set(ids)):
        raise Http404("No such experiment.")
    return [found[pk] for pk in ids]


def comparison_for(*, user, ids: list[int], link=str) -> dict:
    """The compare page's and API's data (see webapp.selectors.comparison); `link` makes URLs absolute for the API."""
    return comparison_of(experiments_compared_for(user=user, ids=ids), link=link)


def experiment_get_for(*, user, experiment_id) -> Experiment:
    return get_object_or_404(experiment_list_for(user=user), pk=experiment_id)


def rerun_changes(experiment: Experiment) -> list[dict]:
    """What a re-run changed against the experiment it came from: each differing setting, then the dataset and the
    telemetry interval, as {setting, before, after} (a missing value: None)."""
    source = experiment.rerun_of
    if source is None:
        return []
    changes = [{"setting": key, "before": source.config.get(key), "after": experiment.config.get(key)}
               for key in sorted(set(source.config) | set(experiment.config))
               if source.config.get(key) != experiment.config.get(key)]
    if source.dataset_id != experiment.dataset_id:
        changes.append({"setting": "dataset", "before": source.dataset.name if source.dataset else None,
                        "after": experiment.dataset.name if experiment.dataset else None})
    if source.telemetry_interval_s != experiment.telemetry_interval_s:
        changes.append({"setting": "telemetry interval (s)", "before": source.telemetry_interval_s,
                        "after": experiment.telemetry_interval_s})
    return changes


def experiment_owned_by(*, user, experiment_id) -> bool:
    return Experiment.objects.filter(owner=user, pk=experiment_id).exists()


def events_after(*, experiment_id: int, after: int, limit: int = EVENTS_PAGE) -> list[dict]:
    rows = Event.objects.filter(experiment_id=experiment_id, seq__gt=after).order_by("seq")[:limit]
    return [row.record for row in rows]


def events_between(*, experiment_id: int, after: int, before: int) -> list[dict]:
    rows = Event.objects.filter(experiment_id=experiment_id, seq__gt=after, seq__lt=before).order_by("seq")
    return [row.record for row in rows]


def experiment_series_for(*, user, experiment_id) -> dict:
    """The chart series of the page's first draw (long lines downsampled); see webapp.selectors.series."""
    experiment = experiment_get_for(user=user, experiment_id=experiment_id)
    return series.experiment_series(experiment_id=experiment.pk)


def experiment_series_csv_for(*, user, experiment_id, name: str | None = None) -> Iterator[str]:
    """The full series as CSV pieces; ownership is checked now, the rows are read as the pieces are taken."""
    experiment = experiment_get_for(user=user, experiment_id=experiment_id)
    return series.series_csv(experiment_id=experiment.pk, name=name)


def artifact_get_for(*, user, experiment_id, artifact_id) -> Artifact:
    return get_object_or_404(
        Artifact.objects.filter(experiment__owner=user, experiment_id=experiment_id)
        .select_related("experiment__model"), pk=artifact_id
    )
