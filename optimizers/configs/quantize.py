"""Settings of the quantize recipe (standard library only: the web validates forms with it).

Which route runs a variant for which kind of model, and why a variant does not apply, is the table in
`optimizers.configs.quantize_routes`; these are only the user's choices.
"""
import dataclasses
from typing import ClassVar

from optimizers.configs.base import RecipeConfig, setting
from optimizers.errors import ConfigError

VARIANTS = (
    "dynamic_int8", "static_int8", "fp16", "bf16",
    "weight_only_int8_cuda", "weight_only_int4_cuda", "fp8_cuda",
    "onnx_dynamic_int8", "onnx_static_int8",
    "weight_only_int8", "weight_only_int4",
)
# Variants that store integer weights: the accuracy budget and per-layer fallback apply to them.
INTEGER_VARIANTS = ("dynamic_int8", "static_int8", "weight_only_int8_cuda", "weight_only_int4_cuda",
                    "onnx_dynamic_int8", "onnx_static_int8", "weight_only_int8", "weight_only_int4")
GROUP_SIZES = (32, 64, 128, 256)
STATIC_VARIANTS = ("static_int8", "onnx_static_int8")  # calibrated on the dataset: they need one
BUDGET_METRICS = ("none", "top1_agreement", "cosine")


@dataclasses.dataclass(frozen=True)
class QuantizeConfig(RecipeConfig):
    recipe: ClassVar[str] = "quantize"
    variant_field: ClassVar[str] = "variant"

    variant: str = setting(
        "dynamic_int8",
        "How to quantize. dynamic_int8: int8 weights, activations quantized on the fly (Linear, LSTM, GRU). "
        "static_int8: int8 weights and activations, calibrated on the dataset (x86 CPUs; needs a dataset). "
        "fp16 / bf16: half-precision weights; callers still pass float32. "
        "weight_only_int8_cuda / weight_only_int4_cuda / fp8_cuda: torchao, on a CUDA worker. "
        "onnx_dynamic_int8 / onnx_static_int8: onnxruntime, for ONNX uploads (static needs a dataset). "
        "weight_only_int8 / weight_only_int4: int8 or int4 weights (embedding tables int8), float activations, "
        "for Hugging Face folders.",
        choices=VARIANTS,
    )
    per_channel: bool = setting(
        True,
        "One weight scale per output channel instead of one per layer: more accurate, "
        "a few bytes larger.",
    )
    # Measured on SmolLM2-135M (bench/RESULTS.md, "Language models"): groups of 64 raised perplexity 26%, of 32 0.3%.
    group_size: int = setting(
        32,
        "weight_only_int4: weights that share one scale, along each row. Smaller groups are more accurate and "
        "a little larger.",
        choices=GROUP_SIZES,
    )
    layers: str = setting(
        "auto",
        "Which layers to quantize. auto: every kind the variant handles (dynamic: Linear, LSTM, GRU; "
        "static: Linear and convolutions). linear: fully connected (nn.Linear) layers only.",
        choices=("auto", "linear"),
    )
    calibration_samples: int = setting(
        256,
        "Training samples run through the model to choose activation ranges (static variants only).",
        min=8, max=10000,
    )
    budget_metric: str = setting(
        "none",
        "Accuracy budget for the integer variants. top1_agreement: share of samples whose top class matches "
        "the original model's (classifiers). cosine: mean cosine similarity of the outputs (embedding models). "
        "With a budget, each layer's sensitivity is measured and the most sensitive layers stay float until "
        "the budget holds.",
        choices=BUDGET_METRICS,
    )
    budget_min: float = setting(
        0.99,
        "The budget: the lowest acceptable top-1 agreement or cosine (0.99 = 99%).",
        min=0.0, max=1.0,
    )
    budget_samples: int = setting(
        256,
        "Validation samples the budget and the sensitivities are measured on (the example input without "
        "a dataset).",
        min=1, max=10000,
    )

    def check_combination(self) -> None:
        if self.budget_metric != "none" and self.variant not in INTEGER_VARIANTS:
            raise ConfigError("budget_metric", f"the accuracy budget applies to the integer variants "
                                               f"({', '.join(INTEGER_VARIANTS)}); {self.variant} has none")

    def needs_dataset(self) -> str | None:
        if self.variant in STATIC_VARIANTS:
            return f"{self.variant} calibrates activation ranges on the dataset's training samples (labels not needed)"
        return None

    @property
    def has_budget(self) -> bool:
        return self.budget_metric != "none"
