"""The built-in architectures' settings: what a user picks on the upload page for a state dict.

Standard library only (the web process draws these as forms and validates them). The networks
themselves are built from these settings in `optimizers.zoo.models`. Defaults suit small data:
ResNet is the CIFAR-style ResNet-18 (3x32x32 images), the MLP and the small CNN take the 8x8
digits that scikit-learn ships, the transformer classifies sequences of 32 token ids.
"""

import dataclasses
import itertools
import math
from typing import Any, ClassVar

from optimizers.configs.base import INTEGERS, Settings, setting
from optimizers.errors import ConfigError

# A classifier head reading more features than this is a mistake in the settings, not a model.
MAX_CLASSIFIER_FEATURES = 65536

InputSpec = tuple[tuple[int, ...], str]


@dataclasses.dataclass(frozen=True)
class ArchitectureConfig(Settings):
    """Base of every architecture's settings."""

    architecture: ClassVar[str] = ""

    def parameter_count(self) -> int:
        """Parameters of the module these settings build, counted from the settings alone (no torch)."""
        raise NotImplementedError

    def example_input(self) -> InputSpec:
        """(shape, dtype name) of one example input, batch of 1."""
        raise NotImplementedError

    def input_refusal(self, shape: tuple[int, ...], dtype: str) -> str | None:
        """Why this architecture cannot take inputs of `shape` (batch first) and `dtype`, naming the setting to
        change; None when it can."""
        if dtype == "int64":
            return f"{self.architecture} takes float images or vectors, and the input is token ids (int64)"
        return None


RESNET_BASE_WIDTHS = (64, 128, 256, 512)
RESNET_MIN_CHANNELS = 8


def _classes() -> Any:
    return setting(10, "Number of classes the model tells apart (size of its output).", min=1, max=100000)


@dataclasses.dataclass(frozen=True)
class ResNetConfig(ArchitectureConfig):
    architecture: ClassVar[str] = "resnet"

    block: str = setting(
        "basic", "Residual block. basic: two 3x3 convolutions (ResNet-18/34). bottleneck: 1x1, 3x3, 1x1 "
        "convolutions with 4x wider outputs (ResNet-50/101/152).", choices=("basic", "bottleneck"))
    layers: INTEGERS = setting(
        (2, 2, 2, 2), "Residual blocks in each of the four stages: 2,2,2,2 is ResNet-18; 3,4,6,3 is ResNet-34 "
        "with basic blocks or ResNet-50 with bottleneck blocks.", min=1, max=64, min_items=4, max_items=4)
    width: float = setting(
        1.0, "Multiplies the stage widths 64, 128, 256, 512 (rounded, at least 8 channels): 0.5 keeps half "
        "the channels and about a quarter of the parameters.", min=0.05, max=4.0)
    small_input: bool = setting(
        True, "Stem for small images such as CIFAR's 32x32: one 3x3 convolution of stride 1 and no max-pool. "
        "Off: the ImageNet stem, a 7x7 convolution of stride 2 and a max-pool (for 224x224 images).")
    in_channels: int = setting(3, "Channels of the input images: 3 for colour, 1 for grey.", min=1, max=64)
    image_size: int = setting(
        32, "Height and width of the example input images; the network pools adaptively, so other sizes "
        "also run.", min=8, max=1024)
    num_classes: int = _classes()

    def stage_widths(self) -> tuple[int, ...]:
        return tuple(max(RESNET_MIN_CHANNELS, round(base * self.width)) for base in RESNET_BASE_WIDTHS)

    def parameter_count(self) -> int:
        expansion = 4 if self.block == "bottleneck" else 1
        widths = self.stage_widths()
        stem = 7 if not self.small_input else 3
        total = self.in_channels * widths[0] * stem * stem + 2 * widths[0]
        planes_in = widths[0]
        for stage, (planes, blocks) in enumerate(zip(widths, self.layers, strict=True)):
            for index in range(blocks):
                stride = 2 if stage and not index else 1
                out = planes * expansion
                if expansion == 1:
                    total += planes_in * planes * 9 + planes * planes * 9 + 4 * planes
                else:
                    total += planes_in * planes + planes * planes * 9 + planes * out + 4 * planes + 2 * out
                if stride != 1 or planes_in != out:
                    total += planes_in * out + 2 * out  # the shortcut's 1x1 convolution and batch norm
                planes_in = out
        return total + planes_in * self.num_classes + self.num_classes

    def example_input(self) -> InputSpec:
        return (1, self.in_channels, self.image_size, self.image_size), "float32"

    def input_refusal(self, shape: tuple[int, ...], dtype: str) -> str | None:
        if len(shape) != 4 or shape[1] != self.in_channels:  # any image size: the network pools adaptively
            return (f"in_channels: the input's samples are {list(shape[1:])}; a ResNet takes images of "
                    f"{self.in_channels} channel(s)")
        return super().input_refusal(shape, dtype)


@dataclasses.dataclass(frozen=True)
class MLPConfig(ArchitectureConfig):
    architecture: ClassVar[str] = "mlp"

    in_features: int = setting(
        64, "Length of one input vector (64 for the 8x8 digits, flattened); image inputs are flattened.",
        min=1, max=1_000_000)
    hidden: INTEGERS = setting(
        (128, 64), "Widths of the hidden layers, each followed by ReLU and dropout; empty for a linear "
        "classifier.", min=1, max=65536, min_items=0, max_items=8)
    num_classes: int = _classes()
    dropout: float = setting(0.1, "Dropout after each hidden layer while training (0 turns it off).",
                             min=0.0, max=0.9)

    def parameter_count(self) -> int:
        sizes = [self.in_features, *self.hidden, self.num_classes]
        return sum(inputs * outputs + outputs for inputs, outputs in itertools.pairwise(sizes))

    def example_input(self) -> InputSpec:
        return (1, self.in_features), "float32"

    def input_refusal(self, shape: tuple[int, ...], dtype: str) -> str | None:
        values = math.prod(shape[1:])
        if values != self.in_features:
            return f"in_features: the input has {values} values per sample (flattened); set in_features to {values}"
        return super().input_refusal(shape, dtype)


@dataclasses.dataclass(frozen=True)
class SmallCNNConfig(ArchitectureConfig):
    architecture: ClassVar[str] = "small_cnn"

    in_channels: int = setting(1, "Channels of the input images: 1 for grey (the digits), 3 for colour.",
                               min=1, max=64)
    image_size: int = setting(8, "Height and width of the input images (8 for the digits).", min=4, max=512)
    channels: INTEGERS = setting(
        (16, 32), "Output channels of each stage (3x3 convolution, batch norm, ReLU, 2x2 max-pool); "
        "each stage halves the image.", min=1, max=1024, min_items=1, max_items=6)
    num_classes: int = _classes()

    def check_combination(self) -> None:
        stages = len(self.channels)
        if self.image_size >> stages < 1:
            raise ConfigError("channels", f"{stages} stages halve the image {stages} times; an image of "
                                          f"{self.image_size} pixels allows at most {self.image_size.bit_length() - 1}")
        if self.classifier_features() > MAX_CLASSIFIER_FEATURES:
            raise ConfigError("image_size", f"the classifier would read {self.classifier_features():,} features "
                                            f"(last channels x (image_size / 2^stages)^2); the limit is "
                                            f"{MAX_CLASSIFIER_FEATURES:,}: add a stage or use smaller images")

    def classifier_features(self) -> int:
        side = self.image_size >> len(self.channels)
        return self.channels[-1] * side * side

    def parameter_count(self) -> int:
        sizes = [self.in_channels, *self.channels]
        convolutions = sum(inputs * outputs * 9 + 2 * outputs for inputs, outputs in itertools.pairwise(sizes))
        return convolutions + self.classifier_features() * self.num_classes + self.num_classes

    def example_input(self) -> InputSpec:
        return (1, self.in_channels, self.image_size, self.image_size), "float32"

    def input_refusal(self, shape: tuple[int, ...], dtype: str) -> str | None:
        wanted = (self.in_channels, self.image_size, self.image_size)
        if tuple(shape[1:]) != wanted:
            return (f"in_channels and image_size: the input's samples are {list(shape[1:])}, and these settings "
                    f"take {list(wanted)}")
        return super().input_refusal(shape, dtype)


@dataclasses.dataclass(frozen=True)
class TransformerConfig(ArchitectureConfig):
    architecture: ClassVar[str] = "transformer"

    vocab_size: int = setting(1000, "Number of distinct token ids (ids run from 0 to vocab_size - 1).",
                              min=2, max=1_000_000)
    max_len: int = setting(32, "Tokens per input sequence (the example input's length).", min=1, max=4096)
    d_model: int = setting(64, "Width of the token embeddings and of every encoder layer.", min=8, max=2048)
    heads: int = setting(4, "Attention heads per layer; d_model must be a multiple of it.", min=1, max=64)
    layers: int = setting(2, "Encoder layers (pre-norm, feed-forward 4 x d_model).", min=1, max=48)
    num_classes: int = setting(2, "Number of classes the model tells apart (size of its output).",
                               min=1, max=100000)

    def parameter_count(self) -> int:
        d = self.d_model
        # attention (in and out projections), feed-forward 4 x d_model, two layer norms; with biases
        per_layer = (3 * d * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 4 * d
        return (self.vocab_size * d + self.max_len * d + self.layers * per_layer + 2 * d
                + d * self.num_classes + self.num_classes)

    def check_combination(self) -> None:
        if self.d_model % self.heads:
            raise ConfigError("heads", f"must divide d_model ({self.d_model}); got {self.heads}")

    def example_input(self) -> InputSpec:
        return (1, self.max_len), "int64"

    def input_refusal(self, shape: tuple[int, ...], dtype: str) -> str | None:
        if dtype != "int64":
            return f"the transformer takes token ids (int64), and the input is {dtype}"
        if len(shape) != 2 or shape[1] > self.max_len:
            return f"max_len: the input's samples are {list(shape[1:])}; the transformer takes up to {self.max_len} ids"
        return None


ARCHITECTURE_CONFIGS: dict[str, type[ArchitectureConfig]] = {
    config.architecture: config for config in (ResNetConfig, MLPConfig, SmallCNNConfig, TransformerConfig)
}


def parse_architecture(name: Any, data: Any) -> ArchitectureConfig:
    """Validate an architecture name and its settings; raise ConfigError naming the bad field."""
    if not isinstance(name, str) or name not in ARCHITECTURE_CONFIGS:
        raise ConfigError("architecture", f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURE_CONFIGS)}")
    return ARCHITECTURE_CONFIGS[name].from_dict(data)
