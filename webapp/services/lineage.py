"""A chain step's result becomes a model of its own, with its lineage; a step that did not succeed stops its chain.

Called inside `experiment_finish`'s transaction, so the step's outcome and what it means for its chain are written
together. The next step starts once the new model has been inspected (webapp.services.chains.chain_continue).
"""
import logging

from django.db import transaction

from optimizers.errors import first_line
from tasks.celery import INSPECT_MODEL
from webapp.clock import ClockTimestamp
from webapp.models import Chain, Experiment, UploadedModel
from webapp.services.files import save_with_file_and_enqueue

log = logging.getLogger(__name__)


def step_label(index: int, recipe: str) -> str:
    return f"Step {index + 1} ({recipe})"


def chain_stop(chain_id: int, status: str, error: str) -> None:
    """The chain ends here; its owner may resume it from the step that stopped it (services.chains)."""
    Chain.objects.filter(pk=chain_id, status=Chain.Status.RUNNING).update(
        status=status, error=error[:2000], finished_at=ClockTimestamp())


def chain_step_finished(experiment_id: int) -> None:
    experiment = Experiment.objects.select_related("model").get(pk=experiment_id)
    chain = Chain.objects.select_for_update().filter(pk=experiment.chain_id).first()
    if chain is None or chain.status != Chain.Status.RUNNING or chain.current_index != experiment.chain_index:
        return
    label = step_label(experiment.chain_index, experiment.recipe)
    if experiment.status == Experiment.Status.CANCELLED:
        chain_stop(chain.pk, Chain.Status.CANCELLED, f"{label} was cancelled.")
    elif experiment.status == Experiment.Status.FAILED:
        chain_stop(chain.pk, Chain.Status.FAILED, f"{label} failed: {experiment.error}")
    else:
        try:
            with transaction.atomic():  # a savepoint: the step's own success stands whatever happens here
                model_from_experiment(experiment)
        except Exception as exc:  # noqa: BLE001 - the storage failed, say: the chain says so and can be resumed
            log.exception("chain %s: the result of experiment %s could not be registered", chain.pk, experiment.pk)
            chain_stop(chain.pk, Chain.Status.FAILED, f"{label} succeeded, but its model could not be registered: "
                                                      f"{first_line(exc)}")


def model_from_experiment(experiment: Experiment) -> UploadedModel:
    """The experiment's result, in its primary format, as a new model of the owner's (inspected like an upload)."""
    summary = experiment.summary or {}
    primary = summary.get("primary_format") or summary.get("format")
    name = (summary.get("formats") or {}).get("written", {}).get(primary)
    artifact = experiment.artifacts.filter(name=name).first() if name else None
    if artifact is None:
        raise ValueError(f"the experiment wrote no {primary or 'model'} file")
    parent = experiment.model
    model = UploadedModel(
        owner_id=experiment.owner_id, name=f"{parent.name} → {experiment.recipe}"[:200],
        original_filename=f"{experiment.recipe} #{experiment.pk}: {artifact.name}"[:255], sha256=artifact.sha256,
        size_bytes=artifact.size_bytes, input_shape=parent.input_shape, input_dtype=parent.input_dtype,
        architecture=(summary.get("architecture") or {}) if primary == "safetensors" else {},
        source_experiment=experiment, parent_model=parent)
    with artifact.file.open("rb") as handle:
        model.file.save("upload", handle, save=False)
    save_with_file_and_enqueue(model, "file", INSPECT_MODEL)
    return model
