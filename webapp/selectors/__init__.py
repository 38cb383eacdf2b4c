"""Reads. Every query of a user's things starts from the user, so nobody reaches another user's (404 otherwise).

One module per object, as the services have; views, API views, consumers and tasks import this package.
"""
from webapp.selectors.devices import offered_shapes
from webapp.selectors.experiments import (
    EVENTS_PAGE,
    artifact_get_for,
    comparison_for,
    events_after,
    events_between,
    experiment_get_for,
    experiment_list_for,
    experiment_owned_by,
    experiment_search_for,
    experiment_series_csv_for,
    experiment_series_for,
    experiments_compared_for,
    rerun_changes,
    waiting_note,
)
from webapp.selectors.first_run import first_run_for
from webapp.selectors.jobs import (
    dataset_pending,
    dataset_prepared_file,
    experiment_cancel_requested,
    experiment_queued,
    experiment_run_current,
    experiment_to_run,
    model_of_owner,
    model_pending,
)
from webapp.selectors.students import student_size_for
from webapp.selectors.uploads import (
    dataset_get_for,
    dataset_list_for,
    dataset_preview_for,
    dataset_ready_for,
    model_get_for,
    model_list_for,
)
from webapp.selectors.workers import worker_list

__all__ = [
    "student_size_for",
    "EVENTS_PAGE", "artifact_get_for", "comparison_for", "dataset_get_for", "dataset_list_for", "dataset_pending",
    "dataset_prepared_file", "dataset_preview_for", "dataset_ready_for", "events_after", "events_between",
    "experiment_cancel_requested",
    "experiment_get_for", "experiment_list_for", "experiment_owned_by", "experiment_search_for",
    "experiment_series_csv_for", "experiment_series_for", "experiment_to_run", "experiment_queued",
    "experiment_run_current",
    "experiments_compared_for",
    "first_run_for",
    "model_get_for", "model_list_for", "model_of_owner", "model_pending", "rerun_changes", "waiting_note",
    "worker_list",
    "offered_shapes",
]
