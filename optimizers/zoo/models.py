"""Build the built-in architectures as torch modules, and summarize them without building them.

`build_model` returns an untrained module in eval mode: state dicts are loaded into it, and
distillation trains it from scratch (calling .train() itself).
"""

from typing import Any

import torch
from torch import nn

from optimizers.configs.architectures import ArchitectureConfig, parse_architecture
from optimizers.errors import ConfigError
from optimizers.zoo.resnet import ResNet
from optimizers.zoo.small_nets import MLP, SmallCNN
from optimizers.zoo.transformer import TransformerClassifier

# 2 GB of float32 weights: past this the settings are a typo (width 4 and 64 blocks a stage), and
# building the model would exhaust the worker's memory before telling the user so.
MAX_PARAMS = 500_000_000

_BUILDERS = {"resnet": ResNet, "mlp": MLP, "small_cnn": SmallCNN, "transformer": TransformerClassifier}


def build_model(name: str, config: dict[str, Any] | ArchitectureConfig) -> nn.Module:
    """Build architecture `name` with `config` (a dict of settings, or a parsed config): eval mode, untrained."""
    spec = _parsed(name, config)
    params = _count_params(spec)
    if params > MAX_PARAMS:
        raise ConfigError("config", f"these settings make a {name} of {params:,} parameters; "
                                    f"the limit is {MAX_PARAMS:,}")
    return _BUILDERS[spec.architecture](spec).eval()


def architecture_summary(name: str, config: dict[str, Any] | ArchitectureConfig) -> dict[str, Any]:
    """Name, normalized settings, parameter count and example input of an architecture (nothing allocated)."""
    spec = _parsed(name, config)
    shape, dtype = spec.example_input()
    return {"name": spec.architecture, "config": spec.to_dict(), "params": _count_params(spec),
            "input_shape": list(shape), "input_dtype": dtype}


def _parsed(name: str, config: dict[str, Any] | ArchitectureConfig) -> ArchitectureConfig:
    if isinstance(config, ArchitectureConfig):
        if config.architecture != name:
            raise ConfigError("architecture", f"settings of {config.architecture!r} given for {name!r}")
        return config
    return parse_architecture(name, config)


def _count_params(spec: ArchitectureConfig) -> int:
    # On the meta device a module has shapes but no storage: counting ResNet-152 costs nothing.
    with torch.device("meta"):
        module = _BUILDERS[spec.architecture](spec)
    return sum(parameter.numel() for parameter in module.parameters())
