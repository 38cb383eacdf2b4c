"""Writes. Views, API views, consumers and tasks change state only through these functions."""
from webapp.services.chains import chain_cancel, chain_create, chain_resume
from webapp.services.datasets import (
    dataset_create,
    dataset_files_store,
    dataset_import_failed,
    dataset_import_succeeded,
)
from webapp.services.events import events_record, experiment_group
from webapp.services.experiments import (
    QuotaExceeded,
    artifacts_store,
    experiment_cancel,
    experiment_claim,
    experiment_create,
    experiment_finish,
    experiment_host_telemetry,
    experiment_left_for_bigger_device,
    experiment_rerun,
)
from webapp.services.outbox import outbox_send
from webapp.services.recovery import experiments_recover
from webapp.services.samples import sample_dataset_create, sample_model_create
from webapp.services.uploads import model_create, model_inspection_failed, model_inspection_succeeded
from webapp.services.workers import worker_heartbeat, worker_stopped

__all__ = [
    "QuotaExceeded", "artifacts_store", "chain_cancel", "chain_create", "chain_resume", "dataset_create",
    "dataset_files_store", "dataset_import_failed", "dataset_import_succeeded", "events_record", "experiment_cancel",
    "experiment_claim", "experiment_create", "experiment_finish", "experiment_group", "experiment_host_telemetry",
    "experiment_left_for_bigger_device", "experiment_rerun",
    "experiments_recover", "model_create", "model_inspection_failed", "model_inspection_succeeded", "outbox_send",
    "sample_dataset_create", "sample_model_create", "worker_heartbeat", "worker_stopped",
]
