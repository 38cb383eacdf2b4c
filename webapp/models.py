"""The records: uploaded models, experiments on them, their event streams and artifacts."""
import uuid

from django.conf import settings
from django.db import models

from optimizers import events
from webapp.clock import ClockTimestamp


def _model_upload_path(instance, filename):
    # The user's file name never reaches the file system: the server makes the name.
    return f"models/{uuid.uuid4().hex}.bin"


def _dataset_upload_path(instance, filename):
    return f"datasets/sources/{uuid.uuid4().hex}.bin"


def _dataset_file_path(instance, filename):
    return f"datasets/{instance.dataset_id}/{uuid.uuid4().hex}-{filename}"


def _artifact_path(instance, filename):
    return f"artifacts/{instance.experiment_id}/{uuid.uuid4().hex}-{filename}"


class UploadedModel(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200)
    file = models.FileField(upload_to=_model_upload_path, blank=True)
    original_filename = models.CharField(max_length=255, blank=True)  # shown to the owner, never used as a path
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    input_shape = models.JSONField()
    input_dtype = models.CharField(max_length=16, default="float32")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    format = models.CharField(max_length=32, blank=True)
    # {"name", "config"} of a built-in architecture, for safetensors state dicts; empty otherwise
    architecture = models.JSONField(default=dict, blank=True)
    params = models.BigIntegerField(null=True)
    info = models.JSONField(default=dict, blank=True)  # the inspection report
    notes = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)  # short lowercase words (webapp.services.labels)
    # Lineage of a model Slimforge made (a chain step's result): the experiment that produced it, and its input.
    source_experiment = models.ForeignKey("Experiment", on_delete=models.SET_NULL, null=True, blank=True,
                                          related_name="output_models")
    parent_model = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="derived_models")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name


class Dataset(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"

    class Kind(models.TextChoices):
        NPZ = "npz"
        CSV = "csv"
        IMAGES = "images", "zip of class folders of images"
        DIGITS = "digits", "scikit-learn digits (built in)"
        TEXT = "text", "texts (.txt, .jsonl or .csv), tokenized by the model's own tokenizer"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.FileField(upload_to=_dataset_upload_path, blank=True)  # the upload; none for built-ins
    original_filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    info = models.JSONField(default=dict, blank=True)  # samples, sample_shape, classes, ...
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name


class DatasetFile(models.Model):
    """What the import made: the normalized dataset.npz and preview images."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=64)
    file = models.FileField(upload_to=_dataset_file_path)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="dataset_file_unique_name")]


class Experiment(models.Model):
    class Status(models.TextChoices):  # the names its status events carry: one vocabulary (optimizers.events)
        QUEUED = events.QUEUED
        RUNNING = events.RUNNING
        SUCCEEDED = events.SUCCEEDED
        FAILED = events.FAILED
        CANCELLED = events.CANCELLED

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="experiments")
    model = models.ForeignKey(UploadedModel, on_delete=models.CASCADE, related_name="experiments")
    # SET_NULL: deleting a dataset keeps the finished reports measured on it (running work refuses the delete).
    dataset = models.ForeignKey(Dataset, on_delete=models.SET_NULL, null=True, blank=True, related_name="experiments")
    recipe = models.CharField(max_length=32)
    config = models.JSONField(default=dict)
    name = models.CharField(max_length=200, blank=True)  # the owner's; the page falls back to "recipe #id"
    notes = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    stage = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    summary = models.JSONField(default=dict, blank=True)
    last_seq = models.BigIntegerField(default=0)  # the highest event seq handed out
    worker = models.CharField(max_length=255, blank=True)
    attempt = models.PositiveSmallIntegerField(default=0)  # how many times a worker has claimed it (1 on a normal run)
    # A cancel: when it was asked for and by whom. A queued job ends at once; a running one at its next step.
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")
    # "Run again": the experiment whose model, dataset and settings this one started from (then edited).
    rerun_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="reruns")
    # Seconds between telemetry samples for this job (0.2-10); null: the worker's default.
    telemetry_interval_s = models.FloatField(null=True, blank=True)
    # The worker it asks for (optimizers.configs.devices: any, cpu, gpu, gpu-x2, ...): its job's queue.
    device_shape = models.CharField(max_length=16, default="any")
    # On how many workers (hosts) of that shape it trains at once, as one DDP group (1: one worker).
    hosts = models.PositiveSmallIntegerField(default=1)
    # The further hosts' telemetry summaries ({"2": {..., "attempt": n}}), each written by its worker as it leaves the
    # run; `summary` holds the first host's. Entries of an earlier attempt do not count.
    hosts_telemetry = models.JSONField(default=dict, blank=True)
    # Why no worker has taken it yet although one was offered it (its memory estimate did not fit), in words.
    placement_note = models.CharField(max_length=500, blank=True)
    # A step of a chain (webapp.services.chains): its index there. A resumed step has several experiments.
    chain = models.ForeignKey("Chain", on_delete=models.SET_NULL, null=True, blank=True, related_name="experiments")
    chain_index = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]
        # The list page filters one owner's experiments by status, recipe or model, newest first.
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="experiment_owner_created"),
            models.Index(fields=["owner", "status", "-created_at"], name="experiment_owner_status"),
            models.Index(fields=["owner", "recipe", "-created_at"], name="experiment_owner_recipe"),
            models.Index(fields=["owner", "model", "-created_at"], name="experiment_owner_model"),
        ]

    def __str__(self):
        return f"{self.recipe} #{self.pk}"

    @property
    def is_finished(self):
        return self.status in self.FINISHED

    @property
    def is_cancellable(self):
        running = self.status == self.Status.RUNNING
        return self.status == self.Status.QUEUED or (running and not self.cancel_requested_at)


class Chain(models.Model):
    """Steps run one after another, each on the model the step before produced (prune -> distill -> quantize)."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chains")
    name = models.CharField(max_length=200, blank=True)
    model = models.ForeignKey(UploadedModel, on_delete=models.SET_NULL, null=True, related_name="chains")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    current_index = models.PositiveSmallIntegerField(default=0)  # the step at work, or the one that stopped it
    error = models.TextField(blank=True)  # which step stopped the chain, and why
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name or f"chain #{self.pk}"


class ChainStep(models.Model):
    """One step's settings, as submitted (or as edited when the chain was resumed from it)."""

    chain = models.ForeignKey(Chain, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveSmallIntegerField()
    recipe = models.CharField(max_length=32)
    config = models.JSONField(default=dict)
    dataset = models.ForeignKey(Dataset, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["chain", "index"], name="chain_step_unique_index")]


class OutboxMessage(models.Model):
    """A task to send to the broker, written in the same transaction as the row it names, and deleted once sent
    (webapp.services.outbox): a broker that is down at submit time delays a job, never loses it."""

    task = models.CharField(max_length=64)
    object_id = models.BigIntegerField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    attempts = models.PositiveIntegerField(default=0)  # failed sends
    last_error = models.CharField(max_length=500, blank=True)
    # The database's clock, as the sweep that compares it reads it (webapp.clock): the web server writes the row,
    # a worker on another machine judges its age.
    created_at = models.DateTimeField(db_default=ClockTimestamp())

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["owner", "id"], name="outbox_owner_order")]


class Event(models.Model):
    """One record of an experiment's stream; `record` is exactly what a page receives."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=16)
    record = models.JSONField()
    # A chart point's series, x and y, taken out of the record once, when it is written
    # (webapp.selectors.series.chart_point); null for events that are no point. The first draw of a long run reads
    # and downsamples these plain columns in SQL instead of unpacking 200,000 JSON records.
    series = models.TextField(null=True, blank=True)
    x = models.FloatField(null=True, blank=True)
    y = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["experiment", "seq"], name="event_unique_seq")]
        # The first draw reads the short series and the stage and status events of a long run without scanning
        # its 200,000 points (webapp.selectors.series).
        indexes = [models.Index(fields=["experiment", "series", "kind", "seq"], name="event_series_seq")]


class ChartSeries(models.Model):
    """How many points a chart series of an experiment has, counted as they are written."""

    # db_index=False: the unique constraint, which starts with the experiment, is its index.
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="chart_series", db_index=False)
    series = models.TextField()
    kind = models.CharField(max_length=16)
    count = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "series", "kind"], name="chart_series_unique")]


class ChartTile(models.Model):
    """One bucket of a chart series at one level: points bucket·2^level … (bucket+1)·2^level − 1 of the series,
    summed up as webapp.selectors.downsample.Extremes (each point: its event's seq, x and y). Kept up to date as
    events are written (webapp.services.chart_tiles), so the first draw of a long series reads at most a few
    hundred of these instead of every point."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="chart_tiles", db_index=False)
    series = models.TextField()
    kind = models.CharField(max_length=16)
    level = models.SmallIntegerField()
    bucket = models.BigIntegerField()
    count = models.BigIntegerField()
    first_seq = models.BigIntegerField()
    first_x = models.FloatField()
    first_y = models.FloatField()
    last_seq = models.BigIntegerField()
    last_x = models.FloatField()
    last_y = models.FloatField()
    low_seq = models.BigIntegerField()
    low_x = models.FloatField()
    low_y = models.FloatField()
    high_seq = models.BigIntegerField()
    high_x = models.FloatField()
    high_y = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "series", "kind", "level", "bucket"],
                                               name="chart_tile_unique")]


class Artifact(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=64)  # made by the recipe runner, e.g. model.pt, report.json
    file = models.FileField(upload_to=_artifact_path)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["experiment", "name"], name="artifact_unique_name")]


class Worker(models.Model):
    """A Celery worker as it last reported itself: a heartbeat row, written by the worker every few seconds."""

    name = models.CharField(max_length=255, unique=True)  # Celery's node name, e.g. gpu0@host
    host = models.CharField(max_length=255)
    pid = models.IntegerField(default=0)
    queues = models.JSONField(default=list, blank=True)
    devices = models.JSONField(default=list, blank=True)  # [{"index", "name", "memory_mb"}] of its GPUs
    load = models.JSONField(default=dict, blank=True)  # {"cpu_percent", "memory_percent", "loadavg_1m", ...}
    isolation = models.CharField(max_length=500, blank=True)  # the sandbox its jobs run in, in words
    current_experiment = models.ForeignKey(Experiment, on_delete=models.SET_NULL, null=True, blank=True,
                                           related_name="+")
    # The experiments its pool processes run now, as the worker's main process knows them: a run no live worker
    # reports is lost (webapp.services.recovery).
    running = models.JSONField(default=list, blank=True)
    # The multi-host experiments it lends its devices to as a further host (their first host's worker runs them).
    hosting = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    last_heartbeat = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)  # a clean shutdown; a crash leaves it empty

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
