"""inspect_model and run_recipe called directly, for the cases a subprocess would only slow down."""

import pytest
import torch

from optimizers.errors import Cancelled, ModelFileError
from optimizers.job_runner import describe_output, inspect_model, make_example, run_recipe
from optimizers.job_spec import JobSpec, SpecError
from optimizers.reporters import ListReporter, NullReporter
from tests.optimizers.models import TokenClassifier, build


@pytest.fixture(scope="session")
def token_pt2(model_dir):
    path = model_dir / "tokens.pt2"
    example = torch.zeros(1, 12, dtype=torch.int64)
    torch.export.save(torch.export.export(build(TokenClassifier), (example,)), str(path))
    return path


def spec(**values) -> JobSpec:
    return JobSpec.from_dict({"action": "inspect", "input_shape": [1, 256], **values})


def test_int64_input_and_tuple_output_are_described(token_pt2):
    job = spec(model_path=str(token_pt2), input_shape=[1, 12], input_dtype="int64")
    info = inspect_model(job, NullReporter())
    assert (info["input_dtype"], info["output_shape"], info["output_dtype"]) == ("int64", [1, 5], "float32")
    assert info["output_note"] == "the model returns a tuple of 2 tensor(s); output_shape describes the first"


def test_quantize_compares_every_output_tensor(token_pt2, tmp_path):
    job = spec(action="run", model_path=str(token_pt2), input_shape=[1, 12], input_dtype="int64",
               recipe="quantize", out_dir=str(tmp_path))
    result = run_recipe(job, NullReporter())
    assert result["artifacts"][0] == "model.pt2" and result["artifacts"][-1] == "report.json"
    assert 0 < result["max_abs_diff"] <= 0.05 * result["reference_max_abs"]


def test_a_cancelled_job_stops_at_the_next_step(mlp_pt, tmp_path):
    report = ListReporter()
    report.cancel_requested = True
    with pytest.raises(Cancelled):
        run_recipe(spec(action="run", model_path=str(mlp_pt), recipe="quantize", out_dir=str(tmp_path)),
                   report)
    assert not list(tmp_path.iterdir())


def test_missing_model_file_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read the model file"):
        inspect_model(spec(model_path=str(tmp_path / "gone.pt")), NullReporter())


def test_example_inputs_are_repeatable():
    assert torch.equal(make_example((2, 3), "float32"), make_example((2, 3), "float32"))
    assert make_example((2, 3), "bfloat16").dtype == torch.bfloat16
    assert torch.equal(make_example((1, 4), "int64"), torch.zeros(1, 4, dtype=torch.int64))


def test_output_without_tensors_is_described_not_fatal():
    assert describe_output({"label": "cat"}) == {
        "output_shape": None, "output_dtype": None, "output_note": "the model returns a dict without tensors",
    }


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"action": "train"}, "action must be one of inspect, run"),
        ({"model_path": ""}, "model_path must be a non-empty string"),
        ({"input_shape": [0]}, "dimension 0 must be at least 1"),
        ({"input_dtype": "f64"}, "input dtype"),
        ({"action": "run"}, "out_dir must be a non-empty string"),
        ({"extra": 1}, "unknown job spec keys: extra"),
    ],
)
def test_malformed_specs_are_spec_errors(changes, problem):
    with pytest.raises(SpecError, match=problem):
        JobSpec.from_dict({"action": "inspect", "model_path": "m", "input_shape": [1], **changes})
