"""static_int8 for torch.export graphs: FX graph mode quantization on the program's own graph.

`ep.module()` is an FX graph of aten ops (`aten.linear.default`, `aten.conv2d.default`), which FX graph mode
quantization does not recognise: it matches `torch.nn.functional` calls. A copy of the graph has those
calls renamed to their functional twins, with every argument spelled out (the lowering reads dilation and
groups by position), and then goes through the same prepare / calibrate / convert as an eager module. The
result is traced to TorchScript: torch 2.13's export cannot hold torch.ao's packed int8 weights.
"""
import copy
import warnings

import torch
import torch.nn.functional as F
from torch import fx

from optimizers.recipes.quantize.static import FxStatic, qconfig_mapping

aten = torch.ops.aten
_FUNCTIONAL = {
    aten.linear.default: F.linear,
    aten.conv1d.default: F.conv1d,
    aten.conv2d.default: F.conv2d,
    aten.conv3d.default: F.conv3d,
    aten.relu.default: F.relu,
    aten.relu_.default: F.relu,
}
_LAYER_FUNCTIONS = (F.linear, F.conv1d, F.conv2d, F.conv3d)


class ExportFxStatic(FxStatic):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backend = self.backend.replace("FX graph mode", "FX graph mode on the exported graph")
        self._functional = functional_copy(self.model)

    def _layer_calls(self) -> list[tuple[str, object, int]]:
        """(layer name, function, index among that function's calls) of every weight-carrying call."""
        wanted = (F.linear,) if self.config.layers == "linear" else _LAYER_FUNCTIONS
        calls, counts = [], {}
        for node in self._functional.graph.nodes:
            if node.op != "call_function" or node.target not in _LAYER_FUNCTIONS:
                continue
            index = counts.get(node.target, 0)
            counts[node.target] = index + 1
            weight = node.args[1]
            if node.target in wanted and isinstance(weight, fx.Node) and weight.op == "get_attr":
                calls.append((weight.target.removesuffix(".weight"), node.target, index))
        return calls

    def layers(self) -> list[str]:
        return [name for name, _, _ in self._layer_calls()]

    def layer_weights(self, layer: str) -> int:
        owner, _, name = f"{layer}.weight".rpartition(".")
        return getattr(self._functional.get_submodule(owner), name).numel()

    def quantize(self, keep_float: frozenset[str] = frozenset()):
        mapping = qconfig_mapping(self.config.per_channel, self.config.layers == "linear")
        for layer, function, index in self._layer_calls():
            if layer in keep_float:
                # Functional calls have no module of their own: they are told apart by their order in the graph.
                mapping.set_module_name_object_type_order("", function, index, None)
        return self._prepare_calibrate_convert(copy.deepcopy(self._functional), mapping)


def functional_copy(module: fx.GraphModule) -> fx.GraphModule:
    """A copy of an exported graph module whose aten layer calls are `torch.nn.functional` calls."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
        rewritten = copy.deepcopy(module)
    for node in rewritten.graph.nodes:
        if node.op == "call_function" and node.target in _FUNCTIONAL:
            node.args, node.kwargs = _all_arguments(node), {}
            node.target = _FUNCTIONAL[node.target]
    rewritten.recompile()
    return rewritten


def _all_arguments(node: fx.Node) -> tuple:
    """The call's arguments by position, defaults filled in from the aten schema."""
    arguments = list(node.args)
    for spec in node.target._schema.arguments[len(arguments):]:
        if spec.name in node.kwargs:
            arguments.append(node.kwargs[spec.name])
        elif spec.has_default_value():
            arguments.append(spec.default_value)
    return tuple(arguments)
