"""Numbers that cannot mislead (issue 13): the original's file size is weighed in the result's format, and a
dataset adapted to the model (resized, channels changed, cast) is said so in the report."""
import json

import pytest
import torch

from optimizers.data.compat import describe_fit
from optimizers.formats.save_all import size_in_format
from optimizers.formats.statedict import save_safetensors
from optimizers.job_runner import _data_fit, _weigh_like_for_like, run_recipe
from optimizers.job_spec import JobSpec
from optimizers.reporters import NullReporter
from optimizers.zoo.models import build_model

ARCHITECTURE = {"name": "small_cnn", "config": {"channels": [8, 16]}}
INPUT = [1, 1, 8, 8]


@pytest.fixture
def safetensors_cnn(tmp_path):
    torch.manual_seed(0)
    model = build_model(ARCHITECTURE["name"], ARCHITECTURE["config"]).eval()
    path = tmp_path / "cnn.safetensors"
    save_safetensors(model, path)
    return model, path


def _spec(path, **values) -> JobSpec:
    return JobSpec.from_dict({"action": "run", "recipe": "prune", "input_shape": INPUT, "model_path": str(path),
                              "architecture": ARCHITECTURE, "out_dir": "unused", **values})


def test_a_safetensors_original_is_weighed_as_torchscript_when_the_result_is_torchscript(safetensors_cnn):
    model, path = safetensors_cnn
    example = torch.zeros(INPUT)
    as_torchscript = size_in_format(model, "torchscript", example, ARCHITECTURE)
    assert as_torchscript > path.stat().st_size  # TorchScript carries code: the same weights take more room
    before = {"size_bytes": path.stat().st_size}
    notes = _weigh_like_for_like(_spec(path), "safetensors", "torchscript", example, before)
    # (Traced again from the reloaded file: the archive's bytes differ a little, its weights not at all.)
    assert abs(before.pop("size_bytes") - as_torchscript) < 0.05 * as_torchscript
    assert before == {"uploaded_size_bytes": path.stat().st_size, "uploaded_format": "safetensors",
                      "size_format": "torchscript"}
    assert len(notes) == 1 and "like for like" in notes[0] and "TorchScript" in notes[0]


def test_the_same_format_changes_nothing(safetensors_cnn):
    _, path = safetensors_cnn
    before = {"size_bytes": 123}
    assert _weigh_like_for_like(_spec(path), "torchscript", "torchscript", torch.zeros(INPUT), before) == []
    assert before == {"size_bytes": 123}


def test_a_format_the_original_cannot_take_keeps_the_upload_size_and_says_so(safetensors_cnn, tmp_path):
    model, _ = safetensors_cnn
    path = tmp_path / "cnn.pt"
    torch.jit.save(torch.jit.trace(model, torch.zeros(INPUT)), path)
    before = {"size_bytes": 123}
    spec = _spec(path, architecture=None)
    # safetensors needs a named architecture: without one the original cannot be written so.
    notes = _weigh_like_for_like(spec, "torchscript", "safetensors", torch.zeros(INPUT), before)
    assert before == {"size_bytes": 123} and "could not be written as safetensors" in notes[0]


@pytest.mark.parametrize(("sample", "model", "dtype", "words"), [
    ([3, 32, 32], [1, 1, 8, 8], "float32", ["[3,32,32]", "3 channels averaged to 1", "from 32x32 to 8x8"]),
    ([8, 8], [1, 3, 8, 8], "float32", ["given a channel dimension", "1 channel repeated to 3"]),
    ([1, 8, 8], [1, 64], "float16", ["flattened", "cast from float32 to float16"]),
])
def test_every_adaptation_is_put_in_words(sample, model, dtype, words):
    text = describe_fit(sample, model, dtype)
    assert all(word in text for word in words), text


def test_samples_that_fit_as_they_are_need_no_words():
    assert describe_fit([1, 8, 8], [1, 1, 8, 8]) is None


def test_the_report_of_a_run_on_resized_images_says_so(tmp_path, digits_npz_resized):
    model = build_model(ARCHITECTURE["name"], ARCHITECTURE["config"]).eval()
    path = tmp_path / "cnn.pt"
    torch.jit.save(torch.jit.trace(model, torch.zeros(INPUT)), path)
    spec = JobSpec.from_dict({"action": "run", "recipe": "quantize", "input_shape": INPUT, "model_path": str(path),
                              "out_dir": str(tmp_path / "out"), "dataset_path": str(digits_npz_resized)})
    result = run_recipe(spec, NullReporter())
    assert result["data"]["sample_shape"] == [1, 16, 16] and result["data"]["adapted"] is True
    assert "resized (bilinear) from 16x16 to 8x8" in result["data"]["note"]
    assert result["data"]["note"] in result["notes"]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["data"] == result["data"]


@pytest.fixture
def digits_npz_resized(tmp_path):
    """The digits at 16x16: images that must be resized to feed an 8x8 model."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.repeat(np.repeat(digits.images[:200, None] / 16.0, 2, axis=2), 2, axis=3).astype(np.float32)
    path = tmp_path / "digits16.npz"
    np.savez(path, x=x, y=digits.target[:200].astype(np.int64))
    return path


def test_no_dataset_no_data_entry():
    assert _data_fit(_spec("unused"), None) is None
