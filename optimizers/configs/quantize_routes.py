"""Which implementation ("route") runs each quantize variant for each kind of model, or why none does.

Standard library only: the web lists the variants of a model with their reasons from `variant_options`,
and refuses an inapplicable one at submit time with `refusal`. The worker looks up the same table
(`lookup`), so the page and the job cannot disagree.

Routes are chosen by measurement, and the choice lives here so it is one line to change as torchao
matures. The issue's anchor (2-core x86 with VNNI, 4-layer MLP 1024 wide, batch 64: fp32 3.5 ms, torch.ao
FX static int8 0.91 ms, eager dynamic int8 1.23 ms, torchao int8 4.8-6.0 ms eager and 1.59 ms only after a
5-28 s torch.compile) held on this project's own run (digits MLP 64-1024-1024-1024-10, batch 32, 1 thread,
latency vs the fp32 module: FX static 0.21x, quantize_jit static 0.20x, eager dynamic 0.24x,
quantize_dynamic_jit 0.23x, onnxruntime dynamic / static 0.15x / 0.16x (fp32 onnxruntime 0.64x), bf16 0.37x,
fp16 0.94x, torchao int8 weight-only 1.55x, the .pt2 weight-only rewrite 1.85x; every int8 file 0.25-0.26x).
So the torch.ao routes run on CPU, torchao only where it alone exists (CUDA weight-only int4 / int8, fp8).
dynamic_int8 on a .pt2 keeps the weight-only rewrite although it is slower: it is the only route that stays
a .pt2 (tied and decomposed weights included); static_int8 is the fast route for exported programs.
"""
from dataclasses import dataclass

KINDS = ("eager", "torchscript", "export", "onnx", "transformers")
# Upload formats as `optimizers.formats.model_io` names them; a safetensors state dict is built into an eager module,
# a Hugging Face folder into a transformers model (an eager module whose input is token ids).
_KIND_OF_FORMAT = {"safetensors": "eager", "torchscript": "torchscript", "export": "export", "onnx": "onnx",
                   "hf": "transformers"}


@dataclass(frozen=True)
class Route:
    name: str  # the implementation the worker dispatches to (a module of optimizers.recipes.quantize)
    backend: str  # what the page says ran
    device: str = "cpu"  # "cpu" or "cuda": where the route can run
    needs_dataset: bool = False  # calibration data (static variants)
    needs_torchao: bool = False
    saves_as: str | None = None  # the artifact's format when the upload's cannot hold it; None keeps it


_EAGER_DYNAMIC = Route("eager_dynamic", "torch.ao quantize_dynamic (x86 kernels), saved as TorchScript",
                       saves_as="torchscript")
_JIT_DYNAMIC = Route("jit_dynamic", "torch.ao quantize_dynamic_jit (x86 kernels)")
_EXPORT_WEIGHT_ONLY = Route("export_weight_only", "weight-only int8, dequantized at run time (torch.export)")
_FX_STATIC = Route("fx_static", "torch.ao FX graph mode static int8 (x86 qconfig), saved as TorchScript",
                   needs_dataset=True, saves_as="torchscript")
_JIT_STATIC = Route("jit_static", "torch.ao quantize_jit static int8 (x86 qconfig)", needs_dataset=True)
_EXPORT_FX_STATIC = Route("export_fx_static", "torch.ao FX graph mode static int8 on the exported graph "
                          "(x86 qconfig), saved as TorchScript", needs_dataset=True, saves_as="torchscript")
_ONNX_DYNAMIC = Route("onnx_dynamic", "onnxruntime.quantization quantize_dynamic (int8 weights)")
# Transformers: what people reach for today is onnxruntime's quantize_dynamic on an ONNX export, with the
# embedding tables int8 too; this route does that after onnxruntime's transformer fusions (attention, layer norm,
# GELU), which its quantizer then runs as integer kernels (bench/transformers_int8.py measures it against that anchor).
_TRANSFORMERS_DYNAMIC = Route("transformers_onnx_dynamic", "ONNX export, onnxruntime transformer fusions, "
                              "quantize_dynamic int8 (linear layers, attention and the embedding tables)",
                              saves_as="onnx")
# Weight-only: int8 (per output channel) or int4 (per group) weights for every linear layer and the embedding
# tables, float activations; aten's weight-only kernels on the CPU. For decoders, whose time goes to reading weights.
_WEIGHT_ONLY_INT8 = Route("weight_only_int8", "int8 weights (per output channel) for linear layers and embedding "
                          "tables, float activations (aten int8 weight-only kernels)", saves_as="torchscript")
_WEIGHT_ONLY_INT4 = Route("weight_only_int4", "int4 weights (per group) for linear layers, int8 embedding tables, "
                          "float activations (aten int4 weight-only kernels)", saves_as="torchscript")
_ONNX_STATIC = Route("onnx_static", "onnxruntime.quantization quantize_static (QDQ, int8)", needs_dataset=True)


def _cast(dtype: str) -> dict[str, Route]:
    backend = f"{dtype} weights and compute; float32 inputs and outputs at the boundary"
    # An architecture's state dict holds float32: a half-precision eager model is saved as TorchScript.
    return {"eager": Route(f"cast_{dtype}", backend + ", saved as TorchScript", saves_as="torchscript"),
            "torchscript": Route(f"cast_{dtype}", backend), "export": Route(f"cast_{dtype}", backend)}


def _torchao(variant: str, label: str) -> Route:
    return Route(variant, f"torchao quantize_({label}) on CUDA, saved as torch.export", device="cuda",
                 needs_torchao=True, saves_as="export")


_TORCHAO_ONLY_EAGER = ("torchao rewrites nn.Linear modules of a model built in Python; upload a state dict "
                       "(safetensors) with its architecture for this variant")
_FOR_ONNX = "for ONNX uploads use onnx_dynamic_int8 or onnx_static_int8"
_WEIGHT_ONLY_FOR = "weight-only int8 / int4 is for Hugging Face folders (transformers), whose time goes to weights"
_NO_STATIC_TRANSFORMERS = ("static int8 calibrates activations of image and feature models; for transformers use "
                           "dynamic_int8 (int8 activations per call, embeddings included) or weight_only_int8 / "
                           "weight_only_int4")
_ONNX_ONLY = "onnxruntime quantization is for ONNX uploads; use dynamic_int8 or static_int8 for PyTorch models"

# variant -> kind -> Route, or the reason the variant does not apply to that kind.
ROUTES: dict[str, dict[str, Route | str]] = {
    "dynamic_int8": {"eager": _EAGER_DYNAMIC, "torchscript": _JIT_DYNAMIC, "export": _EXPORT_WEIGHT_ONLY,
                     "onnx": _FOR_ONNX},
    "static_int8": {"eager": _FX_STATIC, "torchscript": _JIT_STATIC, "export": _EXPORT_FX_STATIC, "onnx": _FOR_ONNX},
    "fp16": {**_cast("fp16"), "onnx": Route("onnx_fp16", "onnxruntime float16 conversion; float32 inputs and "
                                                          "outputs kept")},
    "bf16": {**_cast("bf16"), "onnx": "onnxruntime's CPU provider has no bfloat16 kernels for most operators"},
    "weight_only_int8_cuda": {"eager": _torchao("weight_only_int8_cuda", "Int8WeightOnlyConfig")},
    "weight_only_int4_cuda": {"eager": _torchao("weight_only_int4_cuda", "Int4WeightOnlyConfig")},
    "fp8_cuda": {"eager": _torchao("fp8_cuda", "Float8DynamicActivationFloat8WeightConfig")},
    "onnx_dynamic_int8": {"onnx": _ONNX_DYNAMIC},
    "onnx_static_int8": {"onnx": _ONNX_STATIC},
    "weight_only_int8": {"transformers": _WEIGHT_ONLY_INT8},
    "weight_only_int4": {"transformers": _WEIGHT_ONLY_INT4},
}
ROUTES["dynamic_int8"]["transformers"] = _TRANSFORMERS_DYNAMIC
ROUTES["static_int8"]["transformers"] = _NO_STATIC_TRANSFORMERS
ROUTES["fp16"]["transformers"] = ROUTES["fp16"]["eager"]
ROUTES["bf16"]["transformers"] = ROUTES["bf16"]["eager"]
for _variant in ("weight_only_int8", "weight_only_int4"):
    ROUTES[_variant].update({kind: _WEIGHT_ONLY_FOR for kind in ("eager", "torchscript", "export", "onnx")})
for _variant in ("weight_only_int8_cuda", "weight_only_int4_cuda", "fp8_cuda"):
    ROUTES[_variant].update({"torchscript": _TORCHAO_ONLY_EAGER, "export": _TORCHAO_ONLY_EAGER,
                             "onnx": "torchao works on PyTorch modules, not ONNX graphs",
                             "transformers": ROUTES[_variant]["eager"]})
for _variant in ("onnx_dynamic_int8", "onnx_static_int8"):
    ROUTES[_variant].update({kind: _ONNX_ONLY for kind in ("eager", "torchscript", "export", "transformers")})

NEEDS_DATASET = "needs a dataset: activation ranges are calibrated on its training samples"
NEEDS_CUDA = "runs on a CUDA worker only (torchao kernels)"


def kind_of_format(fmt: str) -> str:
    """The model kind of an upload format ("safetensors" -> "eager"); raise ValueError for an unknown one."""
    if fmt not in _KIND_OF_FORMAT:
        raise ValueError(f"unknown model format {fmt!r}; known: {', '.join(_KIND_OF_FORMAT)}")
    return _KIND_OF_FORMAT[fmt]


def lookup(variant: str, kind: str) -> Route | str:
    """The route for `variant` on a `kind` model, or the reason there is none."""
    if variant not in ROUTES:
        raise ValueError(f"unknown quantize variant {variant!r}; known: {', '.join(ROUTES)}")
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    return ROUTES[variant][kind]


def refusal(variant: str, kind: str, *, has_dataset: bool, cuda_available: bool = True) -> str | None:
    """Why `variant` cannot run on a `kind` model (None when it can). The web passes cuda_available=True:
    it cannot see the workers' devices, and a CUDA variant is queued for a CUDA worker."""
    route = lookup(variant, kind)
    if isinstance(route, str):
        return route
    if route.needs_dataset and not has_dataset:
        return f"{variant} {NEEDS_DATASET}"
    if route.device == "cuda" and not cuda_available:
        return f"{variant} {NEEDS_CUDA}; this worker has no CUDA device"
    return None


def variant_options(kind: str, *, has_dataset: bool) -> list[dict]:
    """Every variant for a `kind` model, for the form: {"variant", "applicable", "reason", "backend", "device"}."""
    options = []
    for variant in ROUTES:
        route = lookup(variant, kind)
        reason = refusal(variant, kind, has_dataset=has_dataset)
        if isinstance(route, Route):
            note = NEEDS_CUDA if route.device == "cuda" else route.backend
            backend, device = route.backend, route.device
        else:
            note, backend, device = route, None, None
        options.append({"variant": variant, "applicable": reason is None, "reason": reason or note,
                        "backend": backend, "device": device})
    return options
