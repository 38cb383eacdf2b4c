"""Re-export a torch.export graph module without losing its dynamic dimensions.

A model exported with, say, a dynamic batch size comes back from `ExportedProgram.module()` as a
graph whose input placeholder carries symbolic sizes and their ranges. Re-exporting it with a
batch-1 example would silently pin the batch to 1, so we rebuild the same `Dim`s. torch.export
refuses to keep a dimension dynamic when its example size is 0 or 1 (it specialises those), so
the trace example is widened along such dimensions by repeating the user's own rows.
"""

import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from optimizers.errors import first_line


def export_program(module: nn.Module, example: torch.Tensor) -> tuple[ExportedProgram, list[str]]:
    """Export `module` with one tensor input; return the program and notes for the user."""
    try:
        dims = _symbolic_dims(module)
    except ValueError as error:
        return _static_export(module, example, str(error))
    if not dims:
        return torch.export.export(module, (example,)), []
    try:
        widened = _widen(example, dims)
        dynamic = ({position: dim for position, (dim, _) in dims.items()},)
        return torch.export.export(module, (widened,), dynamic_shapes=dynamic), []
    except Exception as error:  # noqa: BLE001 - fall back to a static export and say so
        return _static_export(module, example, first_line(error))


def _static_export(
    module: nn.Module, example: torch.Tensor, reason: str
) -> tuple[ExportedProgram, list[str]]:
    note = (f"the optimized model accepts only inputs of shape {list(example.shape)}: "
            f"its dynamic dimensions could not be kept ({reason})")
    return torch.export.export(module, (example,)), [note]


def _symbolic_dims(module: nn.Module) -> dict[int, tuple[Dim, int]]:
    """Map each symbolic dimension of the single input to (Dim, size to trace with)."""
    graph = getattr(module, "graph", None)
    placeholders = [node for node in graph.nodes if node.op == "placeholder"] if graph else []
    if len(placeholders) != 1:
        return {}
    fake = placeholders[0].meta.get("val")
    if not isinstance(fake, torch.Tensor):
        return {}
    dims: dict[int, tuple[Dim, int]] = {}
    by_symbol: dict[str, tuple[Dim, int]] = {}
    for position, size in enumerate(fake.shape):
        if not isinstance(size, torch.SymInt):
            continue
        expr = size.node.expr
        if not getattr(expr, "is_Symbol", False):
            raise ValueError(f"input dimension {position} is an expression ({expr})")
        if str(expr) not in by_symbol:
            low, high = _range_of(size)
            trace_size = max(low, 2) if high is None else min(max(low, 2), high)
            limits = {"min": low} if high is None else {"min": low, "max": high}
            by_symbol[str(expr)] = (Dim(f"dim_{expr}", **limits), trace_size)
        dims[position] = by_symbol[str(expr)]
    return dims


def _range_of(size: torch.SymInt) -> tuple[int, int | None]:
    value_range = size.node.shape_env.var_to_range.get(size.node.expr)
    if value_range is None:
        return 0, None
    low = _finite_int(value_range.lower)
    return (low if low is not None else 0), _finite_int(value_range.upper)


def _finite_int(bound) -> int | None:
    """The bound as an int, or None for torch's unbounded ones (int_oo claims to be finite but is not an int)."""
    try:
        value = int(bound)
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
    return value if abs(value) < 2**62 else None


def _widen(example: torch.Tensor, dims: dict[int, tuple[Dim, int]]) -> torch.Tensor:
    """Resize the example along dynamic dims by repeating its own entries (valid token ids stay valid)."""
    for position, (_, trace_size) in dims.items():
        current = example.shape[position]
        if current != trace_size:
            index = torch.arange(trace_size) % current
            example = example.index_select(position, index)
    return example
