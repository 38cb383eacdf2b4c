"""The home page's first-run path: where a user stands on the way from a model to an optimized download."""
from webapp.models import Dataset, Experiment, UploadedModel
from webapp.selectors.experiments import experiment_list_for
from webapp.selectors.uploads import dataset_list_for, model_list_for


def first_run_for(*, user) -> dict:
    """The newest ready (else pending) model and dataset, the newest unfinished and succeeded experiments, and
    which of the four steps (model, dataset, experiment, download) is the user's: the first of the three that
    make something not done yet, else 4 (a download is never "done": the page cannot know it was saved)."""
    models = model_list_for(user=user)
    datasets = dataset_list_for(user=user)
    experiments = experiment_list_for(user=user)
    model = models.filter(status=UploadedModel.Status.READY).first()
    dataset = datasets.filter(status=Dataset.Status.READY).first()
    succeeded = (experiments.filter(status=Experiment.Status.SUCCEEDED).order_by("-finished_at", "-pk")
                 .prefetch_related("artifacts").first())
    steps_done = [model is not None, dataset is not None, succeeded is not None]
    return {
        "model": model,
        "model_pending": models.filter(status=UploadedModel.Status.PENDING).first() if model is None else None,
        "dataset": dataset,
        "dataset_pending": datasets.filter(status=Dataset.Status.PENDING).first() if dataset is None else None,
        "active": experiments.filter(status__in=(Experiment.Status.QUEUED, Experiment.Status.RUNNING)).first(),
        "succeeded": succeeded,
        "current_step": next((number for number, done in enumerate(steps_done, 1) if not done), 4),
    }
