"""CUDA variants through torchao: weight-only int8, weight-only int4 and fp8, on eager modules.

torchao is imported only here, and only once a CUDA device is known to exist: CPU-only workers never load
it, and a missing CUDA device or torchao is refused with the reason, before any work. On a 2-core x86 CPU
torchao's int8 ran slower than float32 without torch.compile (see `optimizers.configs.quantize_routes`), so it is
offered on CUDA only.

The quantized model stays on the GPU inside `DeviceBoundary`, which moves inputs there and outputs back
to the caller's device as float32: the exporters and the measurements call it with CPU tensors like any
other model. It is saved as torch.export, which keeps torchao's packed low-precision weights.
"""
import copy
import logging

import torch
from torch import nn

from optimizers.errors import RecipeError
from optimizers.recipes.quantize.quantizer import Quantizer

# Smallest compute capability each variant's kernels run on (fp8 tensor cores arrived with Ada / Hopper).
MIN_CAPABILITY = {"weight_only_int8_cuda": (7, 0), "weight_only_int4_cuda": (8, 0), "fp8_cuda": (8, 9)}
INT4_GROUP_SIZE = 128


def torchao_refusal(variant: str) -> str | None:
    """Why `variant` cannot run on this worker (no CUDA, too old a GPU, no torchao), or None."""
    if not torch.cuda.is_available():
        return f"{variant} needs a CUDA device (torchao kernels); this worker has none"
    capability = torch.cuda.get_device_capability()
    needed = MIN_CAPABILITY[variant]
    if capability < needed:
        return (f"{variant} needs a GPU of compute capability {needed[0]}.{needed[1]} or newer; "
                f"{torch.cuda.get_device_name()} is {capability[0]}.{capability[1]}")
    try:
        _import_torchao()
    except ImportError as error:
        return f"{variant} needs torchao, which this worker cannot import ({error})"
    return None


def _import_torchao():
    # torchao logs a warning for every optional CUDA extension it cannot load; the job log needs none of them.
    logging.getLogger("torchao").setLevel(logging.ERROR)
    import torchao.quantization

    return torchao.quantization


def torchao_config(variant: str, per_channel: bool):
    ao = _import_torchao()
    if variant == "weight_only_int8_cuda":
        return ao.Int8WeightOnlyConfig()  # one scale per output row: per-channel by construction
    if variant == "weight_only_int4_cuda":
        # tinygemm's layout: its kernels ship with PyTorch's CUDA build (the default layout needs the mslk package).
        return ao.Int4WeightOnlyConfig(group_size=INT4_GROUP_SIZE, int4_packing_format="tile_packed_to_4d")
    granularity = ao.PerRow() if per_channel else ao.PerTensor()
    return ao.Float8DynamicActivationFloat8WeightConfig(granularity=granularity)


class DeviceBoundary(nn.Module):
    """Runs `inner` on its device and dtype; callers pass and get tensors on their own device, float32."""

    def __init__(self, inner: nn.Module, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner, self.device, self.dtype = inner, device, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        moved = x.to(self.device, self.dtype) if x.is_floating_point() else x.to(self.device)
        output = self.inner(moved)
        return output.to(x.device, torch.float32) if output.is_floating_point() else output.to(x.device)


class TorchaoQuantizer(Quantizer):
    def __init__(self, *args, device: str = "cuda", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.variant = self.route.name
        self.device = torch.device(device)
        if self.device.type == "cuda":
            reason = torchao_refusal(self.variant)
            if reason:
                raise RecipeError(reason)
        # The int4 kernels take bfloat16 activations; the others keep the model's float32.
        self.dtype = torch.bfloat16 if self.variant == "weight_only_int4_cuda" else torch.float32
        self.backend = f"{self.route.backend} ({self.granularity})"
        self.notes = [f"torchao {self.variant.removesuffix('_cuda')}: runs on {self.device.type}; inputs are moved "
                      "there and outputs come back as float32"]

    def layers(self) -> list[str]:
        return [name for name, module in self.model.named_modules()
                if type(module) is nn.Linear and self._fits(module)]

    def _fits(self, linear: nn.Linear) -> bool:
        # int4 weights are grouped along the input features; a layer narrower than a whole group stays float.
        return self.variant != "weight_only_int4_cuda" or linear.in_features % INT4_GROUP_SIZE == 0

    def layer_weights(self, layer: str) -> int:
        return self.model.get_submodule(layer).weight.numel()

    def quantize(self, keep_float: frozenset[str] = frozenset()) -> nn.Module:
        ao = _import_torchao()
        chosen = set(self.layers()) - keep_float
        inner = copy.deepcopy(self.model).eval().to(self.device, self.dtype)
        ao.quantize_(inner, torchao_config(self.variant, self.config.per_channel),
                     filter_fn=lambda module, name: type(module) is nn.Linear and name in chosen)
        # torch.export would pickle torchao's tensor subclasses, which Slimforge refuses to load; unwrapped, the
        # program stores their plain low-precision tensors and rebuilds the subclass inside the graph.
        from torchao.utils import unwrap_tensor_subclass

        return DeviceBoundary(unwrap_tensor_subclass(inner), self.device, self.dtype).eval()
