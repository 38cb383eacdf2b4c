"""Load a safetensors state dict into a built-in architecture, and save modules as safetensors.

A state dict carries weights but no code, which makes it the one upload format that cannot run
anything: the architecture comes from `optimizers.zoo`, chosen by the user. The header is checked
first (`read_safetensors_header`), then compared with the architecture's own state dict, and
only then does the `safetensors` library read the bytes.
"""

import os
from typing import Any

import safetensors.torch
import torch
from torch import nn

from optimizers.errors import ModelFileError, first_line
from optimizers.formats.safetensors_header import read_safetensors_header
from optimizers.zoo.models import build_model

__all__ = ["read_safetensors_header", "load_safetensors_model", "save_safetensors", "SAFETENSORS_DTYPES"]

SAFETENSORS_DTYPES = {
    torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2", torch.int16: "I16", torch.uint16: "U16", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.int32: "I32", torch.uint32: "U32", torch.float32: "F32", torch.int64: "I64",
    torch.uint64: "U64", torch.float64: "F64",
}
# Batch norm's step counter only matters for momentum=None; some converters drop it.
OPTIONAL_SUFFIX = ".num_batches_tracked"
# DataParallel and DistributedDataParallel save every name under this prefix.
WRAPPER_PREFIX = "module."
_LISTED = 4  # names shown per kind of mismatch; the rest are counted
_MAX_MESSAGE = 700
_TORCH_NAMES = {name: str(dtype).removeprefix("torch.") for dtype, name in SAFETENSORS_DTYPES.items()}


def load_safetensors_model(path: str | os.PathLike, architecture: str, config: dict[str, Any]) -> nn.Module:
    """Build `architecture` with `config`, load the file's weights into it, return it in eval mode."""
    header = read_safetensors_header(path)
    model = build_model(architecture, config)
    expected = {name: (SAFETENSORS_DTYPES.get(t.dtype, str(t.dtype)), tuple(t.shape))
                for name, t in model.state_dict().items()}
    renamed = _unwrapped_names(list(header), expected)
    got = {renamed[name]: (entry["dtype"], entry["shape"]) for name, entry in header.items()}
    problems = _mismatch(expected, got)
    if problems:
        message = f"the weights do not fit the {architecture} architecture with these settings: {problems}"
        raise ModelFileError(message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "...")
    tensors = _read_tensors(path, renamed)
    _refuse_non_finite(tensors)
    try:
        model.load_state_dict(tensors, strict=False)  # every name was checked above
    except (RuntimeError, ValueError) as error:
        raise ModelFileError(f"cannot load the weights: {first_line(error)}") from error
    return model.eval()


def _unwrapped_names(names: list[str], expected: dict) -> dict[str, str]:
    if names and all(name.startswith(WRAPPER_PREFIX) for name in names) and not any(n in expected for n in names):
        return {name: name[len(WRAPPER_PREFIX):] for name in names}
    return {name: name for name in names}


def _mismatch(expected: dict[str, tuple], got: dict[str, tuple]) -> str:
    missing = [name for name in expected if name not in got and not name.endswith(OPTIONAL_SUFFIX)]
    # Batch-norm counters say little about what the file is: list them last.
    unexpected = sorted((name for name in got if name not in expected), key=lambda n: n.endswith(OPTIONAL_SUFFIX))
    mismatched = [f"{name}: expected {_describe(expected[name])}, got {_describe(got[name])}"
                  for name in expected if name in got and expected[name] != got[name]]
    parts = [_listing(label, items) for label, items in
             (("mismatched", mismatched), ("missing", missing), ("unexpected", unexpected)) if items]
    if parts and got and not set(got) & set(expected):
        parts.insert(0, "no tensor name matches (a different architecture?)")
    return "; ".join(parts)


def _describe(dtype_and_shape: tuple) -> str:
    dtype, shape = dtype_and_shape
    return f"[{','.join(map(str, shape))}] {_TORCH_NAMES.get(dtype, dtype)}"


def _listing(label: str, items: list[str]) -> str:
    return f"{label} {len(items)} ({_first_few(items)})"


def _first_few(items: list[str]) -> str:
    shown = ", ".join(item[:160] for item in items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


def _read_tensors(path: str | os.PathLike, renamed: dict[str, str]) -> dict[str, torch.Tensor]:
    try:
        loaded = safetensors.torch.load_file(os.fspath(path), device="cpu")
    except Exception as error:  # noqa: BLE001 - the library's own checks, on a file we already checked
        raise ModelFileError(f"cannot read the safetensors file: {first_line(error)}") from error
    return {renamed[name]: tensor for name, tensor in loaded.items()}


def _refuse_non_finite(tensors: dict[str, torch.Tensor]) -> None:
    bad = []
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            kind = "NaN" if torch.isnan(tensor).any() else "infinite"
            bad.append(f"{name} ({kind})")
    if bad:
        raise ModelFileError(f"the weights hold values that are not finite numbers: {_first_few(bad)}")


def save_safetensors(module: nn.Module, path: str | os.PathLike) -> None:
    """Write `module.state_dict()` as safetensors; ValueError when its state is not plain tensors."""
    _refuse_packed_script_state(module)
    tensors: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for name, value in module.state_dict().items():
        tensor = _plain_tensor(name, value).detach().cpu().contiguous()
        storage = tensor.untyped_storage().data_ptr()
        # safetensors refuses tensors that share memory (tied weights): give each its own copy.
        tensors[name] = tensor.clone() if storage in storages and tensor.numel() else tensor
        storages.add(storage)
    safetensors.torch.save_file(tensors, os.fspath(path), metadata={"format": "pt"})


def _refuse_packed_script_state(module: nn.Module) -> None:
    # A TorchScript-quantized module keeps its int8 weights in packed objects that are neither
    # parameters nor buffers: its state_dict is empty, and saving it would silently lose them.
    if not isinstance(module, torch.jit.ScriptModule):
        return
    for node in module.inlined_graph.nodes():
        for output in node.outputs():
            if "torch.classes" in output.type().str():
                raise ValueError(f"cannot save as safetensors: the TorchScript module keeps weights in "
                                 f"{output.type().str().rsplit('.', 1)[-1]} objects, not plain tensors")


def _plain_tensor(name: str, value: Any) -> torch.Tensor:
    prefix = f"cannot save as safetensors: {name}"
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{prefix} is a {type(value).__name__}, not a tensor (packed weights of a quantized module?)")
    if value.is_quantized:
        raise ValueError(f"{prefix} is a quantized tensor ({value.dtype}); safetensors holds plain tensors only")
    if value.layout != torch.strided or value.is_meta:
        raise ValueError(f"{prefix} is not a dense tensor with data ({value.layout}, {value.device})")
    if value.dtype not in SAFETENSORS_DTYPES:
        raise ValueError(f"{prefix} has dtype {value.dtype}, which safetensors cannot hold")
    return value
