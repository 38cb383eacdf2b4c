"""Settings of the quantize recipe (standard library only: the web validates forms with it)."""
import dataclasses
from typing import ClassVar

from optimizers.settings import RecipeConfig, setting


@dataclasses.dataclass(frozen=True)
class QuantizeConfig(RecipeConfig):
    recipe: ClassVar[str] = "quantize"

    variant: str = setting(
        "dynamic_int8",
        "How to quantize. dynamic_int8: int8 weights; activations are quantized on the fly "
        "(TorchScript) or stay float (torch.export models, weight-only).",
        choices=("dynamic_int8",),
    )
    per_channel: bool = setting(
        True,
        "One weight scale per output channel instead of one per layer: more accurate, "
        "a few bytes larger.",
    )
    layers: str = setting(
        "linear",
        "Which layers to quantize. linear: fully connected (nn.Linear) layers.",
        choices=("linear",),
    )
