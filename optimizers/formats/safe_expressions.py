"""Allow-list for the Python expressions a torch.export archive carries as text.

torch.export.load hands each symbolic size ("s77", "2*s77 + 1") to sympy.sympify, which evaluates
Python, and turns each shape guard ("L['x'].size()[0] > 4") into Python source it exec()s. In an
upload both are attacker-written, so every such string must parse to a small arithmetic language:
numbers, size symbols, comparisons, sympy's size functions and tensor size/stride look-ups.
"""

import ast
import re

_SYMBOL = re.compile(r"[a-z]+[0-9]+")  # torch's size symbols: s0, s77, u3, zuf0 ...
_SAFE_STRING = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BREAKS_OUT = re.compile(r"[#\\\n\r;]")
_FUNCTIONS = frozenset({
    "Symbol", "Integer", "Rational", "Float", "Max", "Min", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not",
    "Abs", "Add", "Mul", "Pow", "CeilDiv", "CeilToInt", "CleanDiv", "FloatPow", "FloatTrueDiv", "FloorDiv",
    "FloorToInt", "Identity", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "LShift", "RShift", "Mod",
    "ModularIndexing", "PowByNatural", "PythonMod", "RoundDecimal", "RoundToInt", "ToFloat", "TruncToFloat",
    "TruncToInt", "Where",
})
_FUNCTION_FAMILIES = ("OpaqueUnaryFn_", "BitwiseFn_")
_CONSTANT_NAMES = frozenset({"oo", "zoo", "nan", "L", "inf"})
_TENSOR_METHODS = frozenset({"size", "stride", "storage_offset", "dim", "numel"})
_MATH_FUNCTIONS = frozenset({"floor", "ceil", "trunc", "sqrt", "log2", "inf"})
_OPERATORS = (ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.expr_context)
_SHAPES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Subscript, ast.keyword)


def unsafe_expression(text: str) -> str | None:
    """None when `text` is plain size arithmetic; otherwise what makes it unsafe, for the error message."""
    if not isinstance(text, str):
        return "a value that is not text"
    # torch pastes guards into generated source: a comment, line break or backslash could end the call early.
    if "__" in text or _BREAKS_OUT.search(text):
        return "a dunder name, comment, backslash or line break"
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return "text that is not a Python expression"
    for node in ast.walk(tree):
        problem = _node_problem(node)
        if problem:
            return problem
    return None


def _node_problem(node: ast.AST) -> str | None:
    if isinstance(node, _OPERATORS + _SHAPES):
        return None
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, str) and not _SAFE_STRING.fullmatch(value):
            return f"the string {value!r}"
        return None if value is None or isinstance(value, int | float | str) else f"the constant {value!r}"
    if isinstance(node, ast.Name):
        return None if _allowed_name(node.id) else f"the name {node.id!r}"
    if isinstance(node, ast.Attribute):
        if node.attr in _TENSOR_METHODS:
            return None
        if isinstance(node.value, ast.Name) and node.value.id == "math" and node.attr in _MATH_FUNCTIONS:
            return None
        return f"the attribute {node.attr!r}"
    if isinstance(node, ast.Call):
        return None if _allowed_callee(node.func) else f"a call of {ast.unparse(node.func)!r}"
    return f"a {type(node).__name__} expression"


def _allowed_name(name: str) -> bool:
    return (name in _FUNCTIONS or name in _CONSTANT_NAMES or name == "math" or name.startswith(_FUNCTION_FAMILIES)
            or bool(_SYMBOL.fullmatch(name)))


def _allowed_callee(function: ast.expr) -> bool:
    if isinstance(function, ast.Name):
        return function.id in _FUNCTIONS or function.id.startswith(_FUNCTION_FAMILIES)
    return isinstance(function, ast.Attribute)  # the attribute itself is checked on its own node
