"""Which operators an uploaded model's graph may call: tensor math, and nothing that reaches outside the model.

TorchScript archives and torch.export archives both name their operators: TorchScript code calls `torch.<op>`,
tensor methods and `ops.<namespace>.<op>`; an exported graph names each node's target as a string that
torch.export.load resolves with getattr from `torch`, `_operator` or `math`, whatever the chain (so a target of
`torch.serialization.os.system` would be called like any op). Both are checked here against one policy:

- an operator must live in a namespace of tensor math (`aten`, `prim`, quantized kernels, CPU backends), never
  in one that talks to other processes (`c10d`, `symm_mem`) or instruments the host (`profiler`);
- inside those namespaces, the few operators that reach outside are refused by name: files (`aten::from_file`,
  `aten::save`), Python callbacks (`prim::PythonOp`) and remote calls (`prim::rpc_*`);
- an exported graph may also call the Python arithmetic torch.export itself writes for symbolic sizes
  (`_operator.add`, `torch.sym_max`, ...) and the control-flow higher-order operators, and nothing else.

`tests/optimizers/formats/test_operators.py` walks torch's whole operator registry so that a new torch release
adding a file-touching operator to an allowed namespace fails a test instead of passing silently.
"""

import math
import operator
import re
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from optimizers.errors import ModelFileError

TENSOR_NAMESPACES = frozenset({
    "aten", "prim", "prims", "quantized", "_quantized", "quantized_decomposed", "quantization", "sparse",
    "mkldnn", "mkldnn_prepacked", "onednn", "mkl", "torchao",
})
REFUSED = {
    "aten::from_file": "reads a file of the worker's",
    "aten::save": "writes a file on the worker",
    "prim::PythonOp": "calls back into Python",
    "prim::IgnoredPythonOp": "calls back into Python",
    "prim::rpc_async": "calls another machine",
    "prim::rpc_sync": "calls another machine",
    "prim::rpc_remote": "calls another machine",
}
# The plain-Python callables torch.export writes into graphs for symbolic sizes, and getitem on tuples.
_PYTHON_CALLABLES = (
    operator.getitem, operator.eq, operator.ne, operator.le, operator.ge, operator.lt, operator.gt,
    operator.neg, operator.pos, operator.mul, operator.add, operator.sub, operator.floordiv, operator.mod,
    operator.pow, operator.truediv, operator.and_, operator.or_, operator.lshift, operator.rshift,
    math.trunc, math.ceil, math.floor, math.sqrt,
    torch.sym_not, torch.sym_int, torch.sym_float, torch.sym_ite, torch.sym_max, torch.sym_min, torch.sym_sqrt,
)
ALLOWED_CALLABLES = {f"{function.__module__}.{function.__name__}": function for function in _PYTHON_CALLABLES}
# Operators whose own names are dunders (aten::__and__ combines masks in transformers' attention). Any other dunder
# in a target is refused: getattr on one reaches Python's object internals instead of an operator.
_DUNDER_OPERATORS = frozenset({"__and__", "__or__", "__xor__", "__lshift__", "__rshift__"})
CONTROL_FLOW = frozenset({"cond", "while_loop", "map_impl", "scan"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_REFUSED_NAMES = sorted({name.split("::")[1] for name in REFUSED})
# ASCII boundaries: TorchScript identifiers are ASCII, so a neighbouring non-ASCII letter cannot hide a name.
_REFUSED_WORD = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(_REFUSED_NAMES) + r")(?![A-Za-z0-9_])")
_NAMESPACE_USE = re.compile(r"(?<![A-Za-z0-9_])ops\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
# Custom C++ classes (torchbind): their constructors and __setstate__ run native code, the latter while loading.
_CLASS_USE = re.compile(r"(?<![A-Za-z0-9_])classes\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")


def refusal(operator_name: str) -> str | None:
    """Why `namespace::name` may not run in a model, or None when it is tensor math."""
    namespace, _, _ = operator_name.partition("::")
    if operator_name in REFUSED:
        return f"{operator_name} {REFUSED[operator_name]}"
    if namespace not in TENSOR_NAMESPACES:
        return f"{operator_name} is outside the tensor-math operators (namespace {namespace!r})"
    return None


def _refuse(where: str, problem: str) -> None:
    raise ModelFileError(f"the model's {where} calls {problem}; only tensor-math operators are allowed, and "
                         "models that touch files, processes, the network or Python are refused")


def check_torchscript_code(code: str, member: str) -> None:
    """Before torch compiles an archive's code (its __setstate__ methods run during loading): refuse any mention
    of a refused operator's name and any operator namespace outside tensor math, wherever they appear."""
    found = _REFUSED_WORD.search(code)
    if found:
        _refuse(f"TorchScript code ({member})", f"{found.group(1)}, which {_describe(found.group(1))}")
    for match in _NAMESPACE_USE.finditer(code):
        if match.group(1) not in TENSOR_NAMESPACES:
            _refuse(f"TorchScript code ({member})", f"an operator in the namespace {match.group(1)!r}")
    check_torchscript_classes(code, member)


def check_torchscript_classes(text: str, member: str) -> None:
    """Custom C++ classes only from tensor-math namespaces (packed quantized weights), in code or in a pickle."""
    for match in _CLASS_USE.finditer(text):
        if match.group(1) not in TENSOR_NAMESPACES:
            _refuse(f"TorchScript archive ({member})", f"a custom class of the namespace {match.group(1)!r}")


def _describe(name: str) -> str:
    return next(reason for operator_name, reason in REFUSED.items() if operator_name.endswith(f"::{name}"))


def check_torchscript_module(module: torch.jit.ScriptModule) -> None:
    """After loading: every operator of every method of every submodule, with called functions inlined."""
    for module_name, submodule in module.named_modules():
        for method in submodule._c._method_names():
            graph = submodule._c._get_method(method).graph.copy()
            torch._C._jit_pass_inline(graph)
            for kind in _node_kinds(graph.block()):
                problem = refusal(kind)
                if problem:
                    where = f"{module_name}.{method}" if module_name else method
                    _refuse(f"TorchScript method {where}", problem)


def _node_kinds(block: Any) -> Iterator[str]:
    for node in block.nodes():
        yield node.kind()
        for inner in node.blocks():
            yield from _node_kinds(inner)


def serialized_target_refusal(target: Any) -> str | None:
    """Why a node target string of an exported program's JSON may not run, or None when it is allowed."""
    if not isinstance(target, str):
        return f"a target that is not an operator name ({type(target).__name__})"
    if target in ALLOWED_CALLABLES:
        return None
    parts = target.split(".")
    dunders = [part for index, part in enumerate(parts) if part.startswith("__")
               and not (index == 3 and part in _DUNDER_OPERATORS)]
    if len(parts) in (4, 5) and parts[:2] == ["torch", "ops"] and all(map(_IDENTIFIER.match, parts)) and not dunders:
        if parts[2] == "higher_order":
            return None if parts[3] in CONTROL_FLOW and len(parts) == 4 else f"the higher-order operator {target}"
        return refusal(f"{parts[2]}::{parts[3]}")
    return f"{target!r}, which is not an operator"


def check_exported_targets(targets: Iterable[Any], where: str) -> None:
    for target in targets:
        problem = serialized_target_refusal(target)
        if problem:
            _refuse(f"exported graph ({where})", problem)


def check_graph_module(graph_module: torch.fx.GraphModule) -> None:
    """After torch.export.load: the resolved callable of every node, in the graph and its control-flow subgraphs."""
    allowed = set(map(id, ALLOWED_CALLABLES.values()))
    for name, submodule in graph_module.named_modules():
        graph = getattr(submodule, "graph", None)
        for node in graph.nodes if isinstance(graph, torch.fx.Graph) else ():
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            problem = _resolved_refusal(node, allowed)
            if problem:
                _refuse(f"exported graph ({name or 'forward'})", problem)


def _resolved_refusal(node: torch.fx.Node, allowed: set[int]) -> str | None:
    target = node.target
    if node.op != "call_function":
        return f"a {node.op} node ({target!r}), which exported programs do not contain"
    if isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return refusal(target._qualified_op_name if isinstance(target, torch._ops.OpOverloadPacket)
                       else target.name().split(".")[0])
    if isinstance(target, torch._ops.HigherOrderOperator):
        return None if target.name() in CONTROL_FLOW else f"the higher-order operator {target.name()}"
    if id(target) in allowed:
        return None
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__name__', target)}, which is not an operator"
