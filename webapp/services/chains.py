"""Chains: recipes run one after another (prune -> distill -> quantize), each step on the model the one before made.

A chain is submitted at once: every step's settings are checked by its recipe's config then, and the first step is
queued. When a step succeeds, its result becomes a model of the owner's with its lineage (webapp.services.lineage);
once that model has been inspected, `chain_continue` queues the next step on it. A step that fails or is cancelled
stops the chain with its reason; `chain_resume` starts that step again, with edited settings if given.
"""
from django.core.exceptions import ValidationError
from django.db import transaction

from optimizers.configs import ConfigError, parse_config
from webapp.clock import ClockTimestamp
from webapp.models import Chain, ChainStep, Dataset, Experiment, UploadedModel
from webapp.services.experiments import experiment_cancel, experiment_create
from webapp.services.lineage import chain_stop, step_label

MAX_STEPS = 8


def _step_errors(index: int, exc: ValidationError) -> ValidationError:
    """A step's field errors, named by the step: {"steps.1.config.epochs": [...]}."""
    if hasattr(exc, "error_dict"):
        return ValidationError({f"steps.{index}.{field}": messages for field, messages in exc.message_dict.items()})
    return ValidationError({f"steps.{index}": exc.messages})


def _checked_steps(owner, steps) -> list[dict]:
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise ValidationError({"steps": f"Give the chain's steps as a list of 1 to {MAX_STEPS} recipes."})
    checked = []
    for index, step in enumerate(steps):
        recipe, dataset = step.get("recipe", ""), step.get("dataset")
        try:
            config = parse_config(recipe, step.get("config") or {})
        except ConfigError as exc:
            key = "recipe" if exc.field == "recipe" else f"config.{exc.field}"
            raise ValidationError({f"steps.{index}.{key}": exc.message}) from None
        if dataset is not None and (dataset.owner_id != owner.pk or dataset.status != Dataset.Status.READY):
            raise ValidationError({f"steps.{index}.dataset": "Give one of your ready datasets."})
        reason = config.needs_dataset() if dataset is None else ""
        if reason:
            raise ValidationError({f"steps.{index}.dataset": f"Choose a dataset: {reason}."})
        checked.append({"recipe": recipe, "config": config.to_dict(), "dataset": dataset})
    return checked


def chain_create(*, owner, model: UploadedModel, steps: list[dict], name: str = "") -> Chain:
    """`steps`: [{"recipe", "config", "dataset": Dataset or None}]. Raises ValidationError naming the step."""
    if model.owner_id != owner.pk:
        raise ValidationError({"model": "No such model."})
    if not isinstance(name, str):
        raise ValidationError({"name": "Give the chain's name as text."})
    name = name.strip()
    if len(name) > 200:
        raise ValidationError({"name": "The name is longer than 200 characters."})
    checked = _checked_steps(owner, steps)
    with transaction.atomic():
        chain = Chain.objects.create(owner=owner, model=model, name=name)
        ChainStep.objects.bulk_create(ChainStep(chain=chain, index=i, **step) for i, step in enumerate(checked))
        _start_step(chain, 0, model, raise_errors=True)
    return chain


def _start_step(chain: Chain, index: int, model: UploadedModel, *, raise_errors: bool,
                rerun_of: Experiment | None = None) -> Experiment | None:
    step = chain.steps.get(index=index)
    try:
        with transaction.atomic():
            experiment = experiment_create(owner=chain.owner, model=model, recipe=step.recipe, config=step.config,
                                           dataset=step.dataset, rerun_of=rerun_of,
                                           chain_step={"chain": chain, "chain_index": index})
    except ValidationError as exc:
        if raise_errors:
            raise _step_errors(index, exc) from None
        chain_stop(chain.pk, Chain.Status.FAILED,
                   f"{step_label(index, step.recipe)} could not start: {' '.join(exc.messages)}")
        return None
    Chain.objects.filter(pk=chain.pk).update(current_index=index)
    return experiment


def chain_continue(*, model_id: int) -> None:
    """A model a chain step made is ready: queue the next step on it, or end the chain at its last step."""
    model = UploadedModel.objects.select_related("source_experiment").filter(pk=model_id).first()
    experiment = model.source_experiment if model is not None else None
    if experiment is None or experiment.chain_id is None:
        return
    with transaction.atomic():
        chain = Chain.objects.select_for_update().select_related("owner").get(pk=experiment.chain_id)
        if chain.status != Chain.Status.RUNNING or chain.current_index != experiment.chain_index:
            return
        following = experiment.chain_index + 1
        if not chain.steps.filter(index=following).exists():
            Chain.objects.filter(pk=chain.pk).update(status=Chain.Status.SUCCEEDED, finished_at=ClockTimestamp())
            return
        _start_step(chain, following, model, raise_errors=False)


def chain_model_failed(*, model_id: int, error: str) -> None:
    """A chain step's result could not be inspected: the chain stops there."""
    experiment = Experiment.objects.filter(output_models__pk=model_id, chain__isnull=False).first()
    if experiment is not None:
        chain_stop(experiment.chain_id, Chain.Status.FAILED,
                   f"{step_label(experiment.chain_index, experiment.recipe)} made a model that could not be "
                   f"loaded: {error}")


def step_input(chain: Chain, index: int) -> UploadedModel | None:
    """The model step `index` runs on: the chain's first model, or the ready result of the step before."""
    if index == 0:
        return chain.model
    return (UploadedModel.objects.filter(source_experiment__chain=chain, source_experiment__chain_index=index - 1,
                                         source_experiment__status=Experiment.Status.SUCCEEDED,
                                         status=UploadedModel.Status.READY).order_by("-pk").first())


def chain_resume(*, user, chain_id: int, config_changes: dict | None = None, dataset: Dataset | None | object = ...
                 ) -> Chain:
    """Start the step that stopped a failed or cancelled chain again, its settings edited by `config_changes`
    (and its dataset replaced when given). Raises Chain.DoesNotExist for anything not `user`'s."""
    if not isinstance(config_changes or {}, dict):
        raise ValidationError({"config": "Give the settings to change as a JSON object."})
    with transaction.atomic():
        chain = Chain.objects.select_for_update().select_related("owner").get(pk=chain_id, owner=user)
        if chain.status not in (Chain.Status.FAILED, Chain.Status.CANCELLED):
            raise ValidationError(f"Chain #{chain.pk} is {chain.status}; only a failed or cancelled chain can be "
                                  "resumed.")
        index = chain.current_index
        if chain.steps.filter(index=index + 1).exists() and step_input(chain, index + 1) is not None:
            index += 1  # the step at work had succeeded; it was the next one that never started
        model = step_input(chain, index)
        if model is None:
            raise ValidationError(f"The model step {index + 1} runs on is gone or was never made; start a new "
                                  "chain instead.")
        step = chain.steps.get(index=index)
        edited = {"config": {**step.config, **(config_changes or {})},
                  "dataset": step.dataset if dataset is ... else dataset}
        try:
            _checked_steps(user, [{"recipe": step.recipe, **edited}])  # the same checks as at submit
        except ValidationError as exc:
            raise ValidationError({key.removeprefix("steps.0."): messages
                                   for key, messages in exc.message_dict.items()}) from None
        ChainStep.objects.filter(pk=step.pk).update(config=edited["config"], dataset=edited["dataset"])
        Chain.objects.filter(pk=chain.pk).update(status=Chain.Status.RUNNING, error="", finished_at=None)
        chain.refresh_from_db()
        last = chain.experiments.filter(chain_index=index).order_by("-pk").first()
        _start_step(chain, index, model, raise_errors=True, rerun_of=last)
    chain.refresh_from_db()
    return chain


def chain_cancel(*, user, chain_id: int) -> Chain:
    """Cancel the step at work (the chain then ends `cancelled`). Raises Chain.DoesNotExist for anything not
    `user`'s, ValidationError when the chain already ended."""
    with transaction.atomic():
        chain = Chain.objects.select_for_update().get(pk=chain_id, owner=user)
        if chain.status != Chain.Status.RUNNING:
            raise ValidationError(f"Chain #{chain.pk} already {chain.status}; there is nothing to cancel.")
        current = chain.experiments.filter(chain_index=chain.current_index).order_by("-pk").first()
        if current is not None and current.is_cancellable:
            experiment_cancel(user=user, experiment_id=current.pk)
        if current is None or current.is_finished or current.status == Experiment.Status.QUEUED:
            chain_stop(chain.pk, Chain.Status.CANCELLED,
                       f"Cancelled by {user.get_username()} at step {chain.current_index + 1}.")
    chain.refresh_from_db()
    return chain
