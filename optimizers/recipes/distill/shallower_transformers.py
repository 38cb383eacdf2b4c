"""A shallower copy of a transformers model (a Hugging Face folder's), started from the teacher's own layers.

DistilBERT's recipe: the student keeps the teacher's embeddings, head and every other layer (0, 2, 4, ..), so it
starts close to the teacher and learns the rest from its outputs. The copy stays a transformers model of the same
class with its config's layer count changed, so it is saved as a Hugging Face folder that `from_pretrained` loads.
Width is not changed here: removing attention heads and feed-forward neurons is the prune recipe's work.
"""
import copy
import dataclasses

from torch import nn

from optimizers.configs.distill import HALF_DEPTH
from optimizers.configs.thinner import every_other
from optimizers.errors import RecipeError
from optimizers.formats.hf_folder import TokenIdsModel

_LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer")  # BERT, Llama, Qwen2, Mistral / GPT-2


def layer_stack(model: TokenIdsModel) -> nn.ModuleList:
    """The model's stack of transformer layers: the one ModuleList as long as its config's layer count."""
    count = layer_count(model)
    stacks = [module for module in model.model.modules() if isinstance(module, nn.ModuleList) and len(module) == count]
    if len(stacks) != 1:
        raise RecipeError(f"cannot tell the {model.folder.architecture}'s stack of {count} layers from its other "
                          f"lists of modules ({len(stacks)} candidates)")
    return stacks[0]


def layer_count(model: TokenIdsModel) -> int:
    config = model.model.config
    for key in _LAYER_COUNT_KEYS:
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    raise RecipeError(f"the {model.folder.architecture}'s config names no layer count")


def shallower_copy(teacher: TokenIdsModel, width: float, depth: str) -> tuple[TokenIdsModel, None, list[str]]:
    """(student in eval mode, None: it keeps the upload's kind of architecture, notes on what was kept).

    `width` is not applied (the config's student_width says so): a transformers student keeps the teacher's width."""
    count = layer_count(teacher)
    kept = every_other(count) if depth == HALF_DEPTH else list(range(count))
    student = copy.deepcopy(teacher)
    stack = layer_stack(student)
    layers = [stack[index] for index in kept]
    for new_index, layer in enumerate(layers):
        for module in layer.modules():  # decoders index their key/value cache by layer
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = new_index
    del stack[:]
    stack.extend(layers)
    _set_layer_count(student, kept)
    notes = [f"the student keeps {len(kept)} of the teacher's {count} layers ({', '.join(map(str, kept))}), its "
             "embeddings and its head, and learns from the teacher's outputs (DistilBERT's start)"]
    return student.eval(), None, notes


def _set_layer_count(student: TokenIdsModel, kept: list[int]) -> None:
    config, count = student.model.config, len(kept)
    for key in _LAYER_COUNT_KEYS:
        if isinstance(getattr(config, key, None), int):
            setattr(config, key, count)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) > count:  # per-layer attention kinds (sliding or full)
        config.layer_types = [layer_types[index] for index in kept]
    folder_config = {**student.folder.config, **{key: count for key in _LAYER_COUNT_KEYS
                                                 if key in student.folder.config}}
    student.folder = dataclasses.replace(student.folder, config=folder_config)
