"""A thinner or shallower copy of a built-in teacher, started from the teacher's own weights.

Narrower (MLP hidden layers, small-CNN stages): each layer keeps the neurons or channels whose incoming
weights have the largest L2 norm, and every tensor that reads them is sliced to match, so the copy computes
what the teacher computes through its strongest units. Shallower (ResNet stages, Transformer layers): the
copy keeps every other block, the first of each ResNet stage always (it changes the resolution), the way
DistilBERT took every other layer of BERT. At width 1 and the same depth the copy is the teacher.
"""
import re

import torch
from torch import nn

from optimizers.configs.architectures import parse_architecture
from optimizers.configs.distill import HALF_DEPTH
from optimizers.configs.thinner import every_other, thinner_settings
from optimizers.errors import RecipeError
from optimizers.formats.hf_folder import TokenIdsModel
from optimizers.recipes.distill.shallower_transformers import shallower_copy
from optimizers.zoo.models import build_model
from optimizers.zoo.resnet import ResNet
from optimizers.zoo.small_nets import MLP, SmallCNN
from optimizers.zoo.transformer import TransformerClassifier

NEEDS_ARCHITECTURE = ("a thinner copy is made from a teacher built from a built-in architecture: upload the teacher "
                      "as a state dict (safetensors) with its architecture, or choose a builtin student")
_COPYABLE = (MLP, SmallCNN, ResNet, TransformerClassifier)


def thinner_applies(model: object) -> tuple[bool, str]:
    """Only a built-in architecture's module can be copied (a safetensors upload is built as one), or a transformers
    model (a Hugging Face folder's), made shallower."""
    if isinstance(model, TokenIdsModel):
        return True, (f"a shallower {model.folder.architecture} (every other layer) started from the teacher's own "
                      "layers, saved as a Hugging Face folder")
    if not isinstance(model, _COPYABLE):
        return False, NEEDS_ARCHITECTURE
    return True, f"a narrower or shallower {type(model).__name__} started from the teacher's weights"


def thinner_copy(teacher: nn.Module, architecture: dict | None, width: float, depth: str
                 ) -> tuple[nn.Module, dict | None, list[str]]:
    """(student in eval mode, its architecture {"name", "config"} (None for a transformers model, which keeps its
    own), notes on what was kept)."""
    if isinstance(teacher, TokenIdsModel):
        return shallower_copy(teacher, width, depth)
    applies, reason = thinner_applies(teacher)
    if not applies or architecture is None:
        raise RecipeError(reason if not applies else NEEDS_ARCHITECTURE)
    name = architecture["name"]
    config = parse_architecture(name, architecture.get("config", {})).to_dict()
    copy = _COPIES[name]
    student_config, notes = thinner_settings(name, config, width, depth == HALF_DEPTH)
    student = build_model(name, student_config)
    with torch.no_grad():
        student.load_state_dict(copy.weights(teacher, student), strict=True)
    return student.eval(), {"name": name, "config": parse_architecture(name, student_config).to_dict()}, notes


def _strongest(weight: torch.Tensor, keep: int) -> torch.Tensor:
    """Indexes (in order) of the `keep` output units whose incoming weights have the largest L2 norm."""
    norms = weight.detach().flatten(1).norm(dim=1)
    return norms.topk(keep).indices.sort().values


class _MLPCopy:
    @staticmethod
    def weights(teacher: nn.Module, student: nn.Module) -> dict[str, torch.Tensor]:
        linears = [name for name, module in teacher.named_modules() if isinstance(module, nn.Linear)]
        sizes = [module.out_features for module in student.modules() if isinstance(module, nn.Linear)]
        teacher_state, state, inputs = teacher.state_dict(), {}, None
        for index, (name, size) in enumerate(zip(linears, sizes, strict=True)):
            weight = teacher_state[f"{name}.weight"]
            last = index == len(linears) - 1
            outputs = torch.arange(weight.shape[0]) if last else _strongest(weight, size)
            weight = weight[outputs] if inputs is None else weight[outputs][:, inputs]
            state[f"{name}.weight"], state[f"{name}.bias"] = weight, teacher_state[f"{name}.bias"][outputs]
            inputs = outputs
        return state


class _SmallCNNCopy:
    @staticmethod
    def weights(teacher: nn.Module, student: nn.Module) -> dict[str, torch.Tensor]:
        teacher_state, state, inputs = teacher.state_dict(), {}, None
        convs = [name for name, module in teacher.features.named_children() if isinstance(module, nn.Conv2d)]
        sizes = [module.out_channels for module in student.features if isinstance(module, nn.Conv2d)]
        for conv, size in zip(convs, sizes, strict=True):
            weight = teacher_state[f"features.{conv}.weight"]
            outputs = _strongest(weight, size)
            state[f"features.{conv}.weight"] = weight[outputs] if inputs is None else weight[outputs][:, inputs]
            norm = f"features.{int(conv) + 1}"  # each convolution's batch norm follows it
            for key in ("weight", "bias", "running_mean", "running_var"):
                state[f"{norm}.{key}"] = teacher_state[f"{norm}.{key}"][outputs]
            state[f"{norm}.num_batches_tracked"] = teacher_state[f"{norm}.num_batches_tracked"]
            inputs = outputs
        # The classifier reads the last stage flattened channel by channel: keep each kept channel's block.
        weight = teacher_state["classifier.1.weight"]
        per_channel = weight.shape[1] // teacher.features[-4].out_channels
        columns = (inputs[:, None] * per_channel + torch.arange(per_channel)).flatten()
        state["classifier.1.weight"] = weight[:, columns]
        state["classifier.1.bias"] = teacher_state["classifier.1.bias"]
        return state


def _renumbered(teacher_state: dict, pattern: str, kept: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """The teacher's state with the blocks of each group renumbered to the kept ones (others dropped)."""
    state = {}
    for key, tensor in teacher_state.items():
        found = re.match(pattern, key)
        if found is None:
            state[key] = tensor
        elif int(found["index"]) in kept[found["group"]]:
            new_index = kept[found["group"]].index(int(found["index"]))
            state[f"{found['group']}.{new_index}.{found['rest']}"] = tensor
    return state


class _ResNetCopy:
    @staticmethod
    def weights(teacher: nn.Module, student: nn.Module) -> dict[str, torch.Tensor]:
        kept = {f"layer{stage}": every_other(len(getattr(teacher, f"layer{stage}")))
                if len(getattr(student, f"layer{stage}")) < len(getattr(teacher, f"layer{stage}"))
                else list(range(len(getattr(teacher, f"layer{stage}")))) for stage in range(1, 5)}
        return _renumbered(teacher.state_dict(), r"(?P<group>layer[1-4])\.(?P<index>\d+)\.(?P<rest>.+)", kept)


class _TransformerCopy:
    @staticmethod
    def weights(teacher: nn.Module, student: nn.Module) -> dict[str, torch.Tensor]:
        count = len(teacher.encoder.layers)
        kept = every_other(count) if len(student.encoder.layers) < count else list(range(count))
        return _renumbered(teacher.state_dict(), r"(?P<group>encoder\.layers)\.(?P<index>\d+)\.(?P<rest>.+)",
                           {"encoder.layers": kept})


_COPIES = {"mlp": _MLPCopy, "small_cnn": _SmallCNNCopy, "resnet": _ResNetCopy, "transformer": _TransformerCopy}
