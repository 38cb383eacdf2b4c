"""Red team, through the archive: every hostile file of `hostile_files` through formats.load_model, in this
process (fast): pickles under any name and case, members differing only in case, hostile expressions, guards,
native libraries, file-reading and non-operator graph targets.

The .pt2 cases are real attacks on torch 2.13: `test_the_pt2_attacks_work_against_bare_torch` shows
torch.export.load running each of them, which is why `optimizers.formats.export_checks` exists.
"""

import warnings

import pytest
import torch

from optimizers.errors import ModelFileError
from optimizers.formats.model_io import load_model
from optimizers.formats.safe_expressions import unsafe_expression
from tests.optimizers.hostile_files import build_cases


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, cnn_pt2_dynamic_batch):
    folder = tmp_path_factory.mktemp("hostile")
    marker = folder / "MARKER"
    return build_cases(folder, marker, cnn_pt2_dynamic_batch), marker


def test_every_hostile_file_is_refused_and_runs_nothing(hostile):
    cases, marker = hostile
    for case, (path, extra, expected) in cases.items():
        with pytest.raises(ModelFileError) as caught:
            load_model(path, extra.get("architecture"))
        assert expected in str(caught.value), case
        assert "\n" not in str(caught.value), case
        assert not marker.exists(), f"{case}: code from the upload ran"


@pytest.mark.parametrize("case", [".pt2 with hostile sample inputs", ".pt2 with a pickled weight",
                                  ".pt2 with a hostile size expression", ".pt2 with hostile shape guards"])
def test_the_pt2_attacks_work_against_bare_torch(hostile, case):
    cases, marker = hostile
    path, extra, _ = cases[case]
    example = torch.randn(*extra.get("input_shape", [1, 256]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.export.load(path).module()(example)
    except Exception:  # noqa: BLE001, S110 - the payload ran first; what torch does next does not matter
        pass
    try:
        assert marker.exists(), f"{case}: torch 2.13 no longer runs this; the check may be relaxed"
    finally:
        marker.unlink(missing_ok=True)


def test_real_exports_pass_the_checks(cnn_pt2_dynamic_batch, mlp_pt2):
    for path in (cnn_pt2_dynamic_batch, mlp_pt2):
        module, fmt = load_model(path)
        assert fmt == "export" and module is not None


@pytest.mark.parametrize("text", [
    "s77", "Symbol('s77', positive=True, integer=True)", "2*s0 + FloorDiv(s1, 2)", "Max(1, s0) - Min(s1, 64)",
    "L['x'].size()[0] > 4", "L['x'].size()[0] == L['y'].size()[0]", "math.floor(s0 / 2) <= L['x'].stride()[1]",
    "OpaqueUnaryFn_sqrt(s0)", "Eq(s0, 2) & Ne(s1, 3)",
])
def test_size_arithmetic_is_allowed(text):
    assert unsafe_expression(text) is None


@pytest.mark.parametrize("text, problem", [
    ("__import__('os').system('id')", "a dunder name"), ("eval(chr(111))", "a call of 'eval'"),
    ("open('x', 'w')", "a call of 'open'"), ("exit()", "a call of 'exit'"), ("torch.os.system", "the attribute"),
    ("(lambda: 1)()", "lambda"), ("s0 # x", "comment"), ("s0\nimport os", "line break"),
    ("Symbol('a b')", "the string 'a b'"), ("[s0][0]", "a List expression"), ("Symbol.mro()", "the attribute 'mro'"),
    ("s0 if s1 else s2", "a IfExp expression"), ("s0 +", "not a Python expression"), (42, "not text"),
])
def test_anything_else_is_refused(text, problem):
    assert problem in unsafe_expression(text)
