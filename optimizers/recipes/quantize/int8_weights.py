"""Weight-only int8 for torch.export graph modules.

torch 2.13 dropped `quantize_pt2e`, and torchao is not installed on workers, so exported models
get a plain, portable rewrite: every Linear weight is stored as int8 with a symmetric fp32 scale
(per output channel or per tensor) and dequantized inside the graph (w = w_int8.float() * scale).
Re-exported, the .pt2 then stores one byte per weight instead of four; compute stays in float.
"""

import copy
import warnings
from collections import defaultdict

import torch
from torch import fx, nn

aten = torch.ops.aten
_LINEAR = aten.linear.default
# After run_decompositions() a Linear is a transposed weight fed to (add)mm.
_TRANSPOSES = (aten.t.default, aten.permute.default)
_MATMULS = (aten.mm.default, aten.addmm.default)


def linear_weight_targets(module: fx.GraphModule) -> list[str]:
    """Attribute names of the 2-D float tensors that serve as a Linear layer's weight."""
    nodes_by_target = _get_attr_nodes(module)
    targets = []
    for target, nodes in nodes_by_target.items():
        tensor = _fetch(module, target)
        if not (isinstance(tensor, torch.Tensor) and tensor.dim() == 2 and tensor.is_floating_point()):
            continue
        if any(_is_linear_weight_use(node, user) for node in nodes for user in node.users):
            targets.append(target)
    return targets


def quantize_weights(module: fx.GraphModule, per_channel: bool, on_layer=None,
                     keep_float: frozenset[str] = frozenset()) -> tuple[fx.GraphModule, int]:
    """Return a rewritten copy of `module` and the number of weights it now stores as int8.

    Every use of a chosen weight reads the dequantized value, so a weight shared with another
    op (an embedding tied to the output layer, say) stays consistent. `on_layer(i, n)` is
    called after each layer, for progress reporting and cancellation. Weights named in
    `keep_float` (targets as `linear_weight_targets` gives them) stay as they are: the accuracy
    budget keeps its most sensitive layers in float that way.
    """
    rewritten = copy_keeping_ties(module)
    targets = [target for target in linear_weight_targets(rewritten) if target not in keep_float]
    nodes_by_target = _get_attr_nodes(rewritten)
    quantized = 0
    for index, target in enumerate(targets, start=1):
        # A tied weight (an embedding shared with the output layer) appears under several names;
        # all of them must go, or the float copy is still saved next to the int8 one.
        aliases = _aliases_of(rewritten, target, nodes_by_target)
        nodes = [node for alias in aliases for node in nodes_by_target[alias]]
        quantized += _replace_weight(rewritten, aliases, nodes, per_channel)
        if on_layer is not None:
            on_layer(index, len(targets))
    rewritten.graph.lint()
    rewritten.recompile()
    return rewritten, quantized


def symmetric_int8(weight: torch.Tensor, per_channel: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, fp32 scale) with weight ~= values * scale; -127..127 keeps zero exact."""
    weight = weight.detach().float()
    peak = weight.abs().amax(dim=1, keepdim=True) if per_channel else weight.abs().amax()
    # An all-zero row would divide by zero; any positive scale reproduces it exactly.
    scale = (peak / 127.0).clamp(min=torch.finfo(torch.float32).tiny)
    values = torch.round(weight / scale).clamp(-127, 127).to(torch.int8)
    return values, scale


def _replace_weight(
    module: fx.GraphModule, aliases: list[str], nodes: list[fx.Node], per_channel: bool
) -> int:
    owner_path, _, attr = aliases[0].rpartition(".")
    owner = module.get_submodule(owner_path)
    weight = getattr(owner, attr)
    values, scale = symmetric_int8(weight, per_channel)
    for alias in aliases:
        alias_owner, _, alias_attr = alias.rpartition(".")
        delattr(module.get_submodule(alias_owner), alias_attr)
    values_attr, scale_attr = _free_name(owner, f"{attr}_int8"), _free_name(owner, f"{attr}_scale")
    owner.register_buffer(values_attr, values)
    owner.register_buffer(scale_attr, scale)

    prefix = f"{owner_path}." if owner_path else ""
    graph = module.graph
    first = next(node for node in graph.nodes if node in nodes)  # the new nodes must precede every use
    with graph.inserting_before(first):
        values_node = graph.get_attr(prefix + values_attr)
        scale_node = graph.get_attr(prefix + scale_attr)
        as_float = graph.call_function(aten._to_copy.default, (values_node,), {"dtype": torch.float32})
        dequantized = graph.call_function(aten.mul.Tensor, (as_float, scale_node))
        if weight.dtype != torch.float32:
            dequantized = graph.call_function(aten._to_copy.default, (dequantized,), {"dtype": weight.dtype})
    for node in nodes:
        node.replace_all_uses_with(dequantized)
        graph.erase_node(node)
    return values.numel()


def copy_keeping_ties(module: fx.GraphModule) -> fx.GraphModule:
    """Deep copy in which tensors that share storage in `module` are still one tensor.

    A loaded .pt2 gives tied weights as distinct tensors over one storage; a plain deepcopy
    would split them, and the re-exported file would then store the weight twice.
    """
    memo: dict[int, object] = {}
    first_by_storage: dict[tuple, torch.Tensor] = {}
    named = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    named += [(target, _fetch(module, target)) for target in _get_attr_nodes(module)]
    for _, tensor in named:
        if isinstance(tensor, torch.Tensor):
            key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape,
                   tensor.stride(), tensor.dtype)
            first = first_by_storage.setdefault(key, tensor)
            if first is not tensor:
                memo[id(tensor)] = memo[id(first)] if id(first) in memo else copy.deepcopy(first, memo)
    with warnings.catch_warnings():
        # Deep-copying an exported graph module trips a torch-internal pytree deprecation notice.
        warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
        return copy.deepcopy(module, memo)


def _aliases_of(module: fx.GraphModule, target: str, nodes_by_target: dict[str, list[fx.Node]]) -> list[str]:
    """`target` first, then every other attribute name holding the very same tensor."""
    tensor = _fetch(module, target)
    others = [name for name in nodes_by_target if name != target and _fetch(module, name) is tensor]
    return [target, *others]


def _get_attr_nodes(module: fx.GraphModule) -> dict[str, list[fx.Node]]:
    nodes = defaultdict(list)
    for node in module.graph.nodes:
        if node.op == "get_attr":
            nodes[node.target].append(node)
    return nodes


def _is_linear_weight_use(node: fx.Node, user: fx.Node) -> bool:
    if user.op != "call_function":
        return False
    if user.target is _LINEAR:
        return len(user.args) > 1 and user.args[1] is node
    if user.target in _TRANSPOSES and user.args[0] is node:
        return any(later.target in _MATMULS for later in user.users)
    return False


def _fetch(module: nn.Module, target: str):
    owner_path, _, attr = target.rpartition(".")
    try:
        return getattr(module.get_submodule(owner_path), attr)
    except AttributeError:
        return None


def _free_name(owner: nn.Module, wanted: str) -> str:
    name, counter = wanted, 1
    while hasattr(owner, name):
        name, counter = f"{wanted}_{counter}", counter + 1
    return name
