"""Structured pruning of transformers models: remove whole attention heads and feed-forward neurons.

Torch-Pruning's channel removal would cut query, key and value widths apart from the heads they form, so a
transformers model (a Hugging Face folder's `TokenIdsModel`) is pruned here by its own parts instead:
- an attention head is its rows of the query, key and value projections and its columns of the attention output
  projection; the attention module's head count (num_attention_heads, all_head_size) follows, so it still runs;
- a feed-forward neuron is its row of the intermediate projection(s) (BERT's intermediate, Llama's gate and up)
  and its column of the output projection (BERT's output, Llama's down).
Every layer keeps the same number of neurons, so `config.intermediate_size` describes the result and it is saved as
a Hugging Face folder again. Heads are removed in the same share: the config cannot say that a layer has fewer
heads of the same size, so a model with heads removed is saved as TorchScript and ONNX (job_runner's own fallback).

With `trim_vocabulary`, the token embedding first loses the rows the training texts never use
(`optimizers.recipes.prune.vocabulary`); those parameters count toward the target, so heads and neurons are removed
only for what is still missing, and heads are kept so that the result stays a Hugging Face folder with its rewritten
tokenizer. The rows are planned first and cut after fine-tuning: until then the model reads the original's ids, so
the original and the pruned model read the very same rows (the embeddings are frozen and the training rows hold only
kept tokens, so the cut changes nothing the fine-tuning saw).

Units are ranked within each layer by magnitude (the L2 norm of their weights) or taylor (|weight x gradient| of
the fine-tuning loss, summed over the unit's weights). Targets are approached on the AGP schedule like the
Torch-Pruning branch: each step removes the smallest share of every layer's heads and neurons that meets that
step's goal, then fine-tunes.
"""
import contextlib
import copy
import dataclasses
import math

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from optimizers.configs.prune import ACTIVATION, ORIGINAL_OUTPUTS, PruneConfig
from optimizers.data.splits import DataSplits, fit_to_input
from optimizers.errors import RecipeError
from optimizers.formats.hf_folder import TokenIdsModel
from optimizers.recipes.distill.shallower_transformers import layer_stack
from optimizers.recipes.prune import transformer_units as units
from optimizers.recipes.prune.finetune import (
    agp_schedule,
    begin_step,
    finetune,
    report_reached,
    step_checkpoints,
    structured_goal,
)
from optimizers.recipes.prune.layers import private_copy
from optimizers.recipes.prune.objective import LABELS_OBJECTIVE, Objective, accumulate_gradients, cosine_sum
from optimizers.recipes.prune.vocabulary import TrimPlan, apply_trim, plan_trim, room_for, trim_note
from optimizers.registry import RecipeResult
from optimizers.reporters import Reporter
from optimizers.training.replicated import distributed_extras

INCREMENTS = 200  # the share of every layer's units removed moves in steps of 1/INCREMENTS: targets are met closely
MAX_NEURON_SHARE = 0.9  # no layer loses more than this share of its feed-forward neurons
# Heads are removed at this multiple of the neuron share; a head goes only once the share covers a whole one, and
# the neurons meet the target between head removals (a head is a large step: 1/12 of a BERT-base layer's attention).
HEAD_SHARE = 1.0
HIGH_LEARNING_RATE = 1e-3  # AdamW above this tends to wash out what a pretrained transformer learnt
TAYLOR_SAMPLES = 256  # training samples that rank the units for the taylor and activation criteria
FOLDER_NOTE = ("every layer keeps the same number of feed-forward neurons, so config.json's intermediate_size "
               "describes the result: model.zip is a Hugging Face folder that from_pretrained loads")
HEADS_NOTE = ("attention heads were removed: a config cannot describe fewer heads of the same size, so the result "
              "is no Hugging Face folder any more; model.pt (TorchScript) and model.onnx are the downloads")


def transformers_structured_applies(model: TokenIdsModel) -> tuple[bool, str]:
    try:
        layers = units.layers(model)
    except RecipeError as error:
        return False, str(error)
    if all(layer.heads is not None for layer in layers):
        return True, ("attention heads and feed-forward neurons can be removed, the same share in every layer "
                      "(fine-tuning on labels, or on the original's outputs without labels)")
    return True, ("feed-forward neurons can be removed, the same number in every layer; attention heads are kept "
                  "(each key/value head serves a group of query heads)")


def prune_transformers(model: TokenIdsModel, data: DataSplits, config: PruneConfig, report: Reporter, *,
                       example: torch.Tensor, checkpoint_dir: str | None = None,
                       objective: Objective = LABELS_OBJECTIVE) -> RecipeResult:
    applicable, reason = transformers_structured_applies(model)
    if not applicable:
        raise RecipeError(f"structured pruning does not apply: {reason}")
    pruned = private_copy(model).cpu().eval()
    counts_before = units.counts(units.layers(pruned))
    before = _macs_and_params(pruned, example)
    trim = _plan(pruned, data, config, before[1])
    goals = _goals_after_trim(config, trim, before[1])
    # With trimming, heads are kept (counted as 0: kept whole), so config.json still describes the result.
    counts = counts_before if trim is None else [(0, neurons) for _, neurons in counts_before]
    trimmed_share = trim.removed_params / before[1] if trim else 0.0
    steps = config.agp_steps if goals else 0
    schedule, epochs = agp_schedule(config, report)
    trained: list[dict | None] = []
    judged: list[dict] = []  # per step, with an objective that judges without labels: its score pruned, fine-tuned
    level = 0
    for step in range(1, steps + 1):
        begin_step(schedule, report, step, steps)
        level, reached = _prune_until(pruned, level, structured_goal(goals, step), before, counts, example,
                                      data, config, objective)
        report_reached(report, schedule, step, steps, (reached[0], reached[1] - trimmed_share))
        scored = _score(pruned, objective)
        with _embeddings_frozen(pruned), _every_layer_matched(model, pruned, objective) as learnt:
            trained.append(finetune(pruned, data, example, config, schedule, epochs=epochs[step - 1],
                                    stage="fine-tune", checkpoint_dir=step_checkpoints(checkpoint_dir, step),
                                    objective=learnt))
        if scored is not None:
            judged.append({"step": step, "pruned": scored, "fine_tuned": _score(pruned, objective)})
        schedule.next_slice()
    pruned.eval()
    if trim is not None:
        apply_trim(pruned, trim)
        example = pruned.example_ids(tuple(example.shape))  # the original's ids may be past the trimmed vocabulary
    result = _result(pruned, example, config, before, counts_before, trim)
    if trim is not None and not goals:
        result.notes.append("trimming the vocabulary alone met the targets: no head or neuron was removed, and "
                            "there was nothing to fine-tune (outputs on text of kept tokens are the original's)")
    if judged:
        result.extras["fine_tune_scores"] = {"score": objective.score_name, "steps": judged}
        result.notes.append(f"validation {objective.score_name} to the original's outputs: {judged[-1]['pruned']:.4f} "
                            f"right after the last pruning step, {judged[-1]['fine_tuned']:.4f} after fine-tuning")
    result.extras.update(distributed_extras(trained))
    return result


def _plan(model: TokenIdsModel, data: DataSplits, config: PruneConfig, params: int) -> TrimPlan | None:
    """The vocabulary trimming asked for: the tokens it must keep, and as many more as the parameter target allows."""
    if not config.trim_vocabulary:
        return None
    return plan_trim(model, data, room_for(model, config.target_params_ratio, params))


def _goals_after_trim(config: PruneConfig, trim: TrimPlan | None, params: int) -> PruneConfig | None:
    """The targets heads and neurons must meet on the untrimmed model (the config's own without trimming); None
    when trimming alone meets them. The trimmed rows are `removed_params` of the `params` the targets are shares of."""
    if trim is None:
        return config
    met = params - trim.removed_params <= config.target_params_ratio * params
    params_goal = 1.0 if met else min(1.0, config.target_params_ratio + trim.removed_params / params)
    if params_goal >= 1.0 and config.target_macs_ratio >= 1.0:
        return None
    return dataclasses.replace(config, target_params_ratio=params_goal)


@contextlib.contextmanager
def _embeddings_frozen(model: nn.Module):
    """Fine-tune without the token embeddings (often half the parameters): they are not pruned, their gradients
    would cost as much as the rest, and AdamW's weight decay would shrink the rows of every token the fine-tuning
    samples never show."""
    frozen = [parameter for module in model.modules() if isinstance(module, nn.Embedding)
              for parameter in module.parameters() if parameter.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)


class _LayerOutputs:
    """Catches the hidden states each layer of a stack gives on every forward pass, until closed."""

    def __init__(self, layers: nn.ModuleList) -> None:
        self.caught: list[torch.Tensor] = []
        self.handles = [layer.register_forward_hook(self._catch) for layer in layers]

    def _catch(self, module, args, output) -> None:
        self.caught.append(output[0] if isinstance(output, tuple | list) else output)

    def take(self) -> list[torch.Tensor]:
        caught, self.caught = self.caught, []
        return caught

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.caught = []


@contextlib.contextmanager
def _every_layer_matched(original: TokenIdsModel, pruned: TokenIdsModel, objective: Objective):
    """Fine-tuning on the original's outputs matches every pruned layer's output to the original layer's too.

    Pruning keeps the hidden size, so each layer's output can be compared with the original's (per token cosine,
    padding left out) and every layer gets its own signal, not only the last one (layer-wise distillation, as in
    CoFi). Validation still judges the final outputs alone."""
    if objective.loss_fn is None:
        yield objective
        return
    teacher, student = _LayerOutputs(layer_stack(original)), _LayerOutputs(layer_stack(pruned))
    pad = original.pad_token_id

    def loss(model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        student.take()
        outputs = model(inputs)
        mine = student.take()
        teacher.take()
        with torch.no_grad():
            target = original(inputs).float()
        theirs = teacher.take()
        pairs = [(outputs, target), *zip(mine, theirs, strict=True)]
        return sum(_distance(got, want, inputs, pad) for got, want in pairs) / len(pairs)

    try:
        yield dataclasses.replace(objective, loss_fn=loss)
    finally:
        teacher.close()
        student.close()


def _distance(got: torch.Tensor, want: torch.Tensor, inputs: torch.Tensor, pad: int | None) -> torch.Tensor:
    total, count = cosine_sum(got, want, inputs, pad)
    return 1 - total / count


def prune_once(model: TokenIdsModel, data: DataSplits, config: PruneConfig, example: torch.Tensor,
               objective: Objective = LABELS_OBJECTIVE) -> TokenIdsModel:
    """A copy pruned to the final targets at once, without fine-tuning: what fine-tuning starts from (benchmarks).
    With trim_vocabulary its vocabulary is trimmed too: it takes the ids of its own rewritten tokenizer."""
    pruned = private_copy(model).cpu().eval()
    before, counts = _macs_and_params(pruned, example), units.counts(units.layers(pruned))
    trim = _plan(pruned, data, config, before[1])
    goals = _goals_after_trim(config, trim, before[1])
    if goals:
        _prune_until(pruned, 0, (goals.target_macs_ratio, goals.target_params_ratio), before,
                     counts if trim is None else [(0, neurons) for _, neurons in counts], example, data, config,
                     objective)
    if trim is not None:
        apply_trim(pruned, trim)
    return pruned


def _score(model: nn.Module, objective: Objective) -> float | None:
    return round(objective.evaluate_fn(model)[1], 4) if objective.evaluate_fn is not None else None


def _prune_until(model: TokenIdsModel, level: int, goal: tuple[float, float], before: tuple[int, int],
                 counts_before: list[tuple[int, int]], example: torch.Tensor, data: DataSplits, config: PruneConfig,
                 objective: Objective) -> tuple[int, tuple[float, float]]:
    """Remove the smallest share of units (level / INCREMENTS of every layer's) whose result meets `goal`.

    The units are ranked once, on the model as it is; the share is found by bisection on copies (the MACs and
    parameters only fall as the share grows), then applied to the model. Returns (level, reached ratios).
    """
    if config.importance == ACTIVATION:
        scores = _contributions(model, data, example)
    else:
        if config.importance == "taylor":
            accumulate_gradients(model, data, example, objective, samples=TAYLOR_SAMPLES, batch=32)
        scores = [units.scores(layer, config.importance == "taylor") for layer in units.layers(model)]
        model.zero_grad(set_to_none=True)

    def ratios_at(candidate: int) -> tuple[float, float]:
        trial = copy.deepcopy(model)
        units.remove(units.layers(trial), scores, _kept(counts_before, candidate))
        return _ratios(_macs_and_params(trial, example), before)

    def meets(ratios: tuple[float, float]) -> bool:
        return ratios[0] <= goal[0] and ratios[1] <= goal[1]

    low, high = level, INCREMENTS
    if not meets(ratios_at(high)):
        low = high  # the target cannot be met: remove as much as allowed
    while low < high:
        middle = (low + high) // 2
        if meets(ratios_at(middle)):
            high = middle
        else:
            low = middle + 1
    units.remove(units.layers(model), scores, _kept(counts_before, low))
    units.keep_config_in_step(model)
    return low, _ratios(_macs_and_params(model, example), before)


def _kept(counts_before: list[tuple[int, int]], level: int) -> list[tuple[int, int]]:
    """How many heads and neurons each layer keeps when level / INCREMENTS of its original ones are removed."""
    share = level / INCREMENTS
    return [(max(1, heads - math.floor(min(1.0, HEAD_SHARE * share) * heads + 1e-9)) if heads else 0,
             max(math.ceil((1 - MAX_NEURON_SHARE) * neurons), neurons - round(share * neurons)))
            for heads, neurons in counts_before]


@torch.no_grad()
def _contributions(model: TokenIdsModel, data: DataSplits, example: torch.Tensor
                   ) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
    """Per layer: each head's and each neuron's mean contribution to its layer's output on training samples (the
    norm of what it adds through the output projection, averaged over tokens), the units whose removal changes the
    outputs least going first. Needs no labels and no gradients (at the unpruned start, output matching has none)."""
    layers = units.layers(model)
    sums = [[None, None] for _ in layers]
    tokens = [0]

    def catch(index: int, kind: int, projection: nn.Linear, head_size: int | None):
        def hook(module, args):
            inputs = args[0].detach().float().flatten(0, -2)  # [tokens, width]
            if head_size is None:  # a neuron's contribution: |activation| x the norm of its output column
                found = inputs.abs().sum(dim=0) * projection.weight.detach().float().norm(dim=0)
            else:  # a head's: the norm of its slice of the projection applied to its slice of the input
                heads = inputs.shape[1] // head_size
                weight = projection.weight.detach().float().reshape(-1, heads, head_size)
                found = torch.einsum("thd,ohd->tho", inputs.reshape(-1, heads, head_size), weight).norm(dim=2).sum(0)
            sums[index][kind] = found if sums[index][kind] is None else sums[index][kind] + found
            if index == 0 and kind == 1:
                tokens[0] += inputs.shape[0]
        return hook

    handles = []
    for index, layer in enumerate(layers):
        if layer.heads is not None:
            dense = layer.heads.output.dense
            handles.append(dense.register_forward_pre_hook(
                catch(index, 0, dense, layer.heads.attention.attention_head_size)))
        output = layer.neurons.owner.get_submodule(layer.neurons.output)
        handles.append(output.register_forward_pre_hook(catch(index, 1, output, None)))
    model.eval()
    try:
        for start in range(0, min(TAYLOR_SAMPLES, len(data.train_x)), 32):
            model(fit_to_input(data.train_x[start:start + 32], tuple(example.shape), data.input_dtype))
    finally:
        for handle in handles:
            handle.remove()
    return [(heads, neurons) for heads, neurons in sums]


def _macs_and_params(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(example)
    return counter.get_total_flops() // 2, sum(parameter.numel() for parameter in model.parameters())


def _ratios(now: tuple[int, int], before: tuple[int, int]) -> tuple[float, float]:
    return tuple(current / original if original else 1.0 for current, original in zip(now, before, strict=True))


def _result(pruned: TokenIdsModel, example: torch.Tensor, config: PruneConfig, before: tuple[int, int],
            counts_before: list[tuple[int, int]], trim: TrimPlan | None) -> RecipeResult:
    after = _macs_and_params(pruned, example)
    macs_ratio, params_ratio = _ratios(after, before)
    counts_after = units.counts(units.layers(pruned))
    heads_removed = any(now[0] < then[0] for now, then in zip(counts_after, counts_before, strict=True))
    heads = ", ".join(f"{now}/{then}" for (now, _), (then, _) in zip(counts_after, counts_before, strict=True))
    neurons = ", ".join(f"{now}/{then}" for (_, now), (_, then) in zip(counts_after, counts_before, strict=True))
    embeddings = "embeddings are never pruned" if trim is None else "the token embedding trimmed, see below"
    narrower = counts_after != counts_before
    notes = [f"{macs_ratio:.1%} of the MACs and {params_ratio:.1%} of the parameters are left ({embeddings}); "
             + ("the layers really are narrower, so the files shrink and run faster" if narrower else
                "the layers are whole, so the files shrink and the speed stays"),
             f"feed-forward neurons kept per layer: {neurons}"
             + (f"; attention heads kept per layer: {heads}" if any(then for then, _ in counts_before) else "")]
    notes.append(HEADS_NOTE if heads_removed else FOLDER_NOTE)
    if trim is not None:
        notes.append(trim_note(trim))
    if macs_ratio > config.target_macs_ratio + 0.01 or params_ratio > config.target_params_ratio + 0.01:
        notes.append(f"the target was not reached: every layer keeps at least one attention head and "
                     f"{1 - MAX_NEURON_SHARE:.0%} of its feed-forward neurons, and "
                     + ("embeddings are not pruned" if trim is None else
                        "attention heads are kept with a trimmed vocabulary"))
    if config.optimizer == "adamw" and config.learning_rate > HIGH_LEARNING_RATE:
        notes.append(f"fine-tuned at learning rate {config.learning_rate:g}: pretrained transformers usually fine-tune "
                     f"with AdamW at 1e-5 to {HIGH_LEARNING_RATE:g}; a lower rate may keep more of what it learnt")
    learnt_from = "the original's outputs (cosine)" if config.fine_tune_on == ORIGINAL_OUTPUTS else "the labels"
    return RecipeResult(
        model=pruned,
        backend=f"attention heads and feed-forward neurons removed ({config.importance} importance), AGP schedule "
                f"in {config.agp_steps} step(s), fine-tuned on {learnt_from} ({config.optimizer}, "
                f"{config.lr_schedule} schedule)",
        notes=notes, primary_format="torchscript" if heads_removed else None,
        extras={"macs_before": before[0], "macs_after": after[0], "params_before": before[1],
                "params_after": after[1], "heads": [[then, now] for (then, _), (now, _) in
                                                    zip(counts_before, counts_after, strict=True)],
                "neurons": [[then, now] for (_, then), (_, now) in zip(counts_before, counts_after, strict=True)],
                **({"vocabulary": {"before": trim.rows, "kept": len(trim.kept), "special": trim.specials,
                                   "characters": trim.characters, "training": trim.training, "filled": trim.filled,
                                   "removed_params": trim.removed_params}} if trim else {})},
    )
