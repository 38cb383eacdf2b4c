"""The sandbox child as the worker runs it: a real subprocess, JSON lines on stdout."""

import json

import pytest
import safetensors.torch

from optimizers.formats.model_io import load_model
from optimizers.measure.inference import count_parameters
from optimizers.recipes.prune.recipe import ONNX_NOT_PRUNABLE
from optimizers.zoo.models import build_model
from tests.optimizers.onnx_files import linear_onnx

ZOO_MLP = {"name": "mlp", "config": {"in_features": 16, "hidden": [8], "num_classes": 3}}


@pytest.fixture
def run_sandbox(run_python, tmp_path):
    def run(**spec):
        spec_path = tmp_path / "spec.json"
        spec_path.write_text(json.dumps(spec))
        finished = run_python("-m", "optimizers.job_child", str(spec_path))
        # Every stdout line is an event or the final record: nothing else may reach it.
        records = [json.loads(line) for line in finished.stdout.splitlines()]
        final = records[-1]
        assert final["kind"] in ("result", "error")
        assert all(record["kind"] in ("progress", "metric", "stage", "log") for record in records[:-1])
        return finished, records[:-1], final

    return run


def test_inspect_describes_the_model(run_sandbox, cnn_pt2_dynamic_batch):
    finished, events, final = run_sandbox(
        action="inspect", model_path=str(cnn_pt2_dynamic_batch), input_shape=[1, 3, 32, 32],
        input_dtype="float32",
    )
    assert finished.returncode == 0, finished.stderr
    info = final["result"]
    assert info["format"] == "export"
    assert info["params"] == count_parameters(load_model(cnn_pt2_dynamic_batch)[0])
    assert info["size_bytes"] == cnn_pt2_dynamic_batch.stat().st_size
    assert (info["input_shape"], info["input_dtype"]) == ([1, 3, 32, 32], "float32")
    assert (info["output_shape"], info["output_dtype"], info["output_note"]) == ([1, 10], "float32", None)
    assert 0 < info["latency_ms_p50"] <= info["latency_ms_p95"]
    assert info["threads"] == 1
    assert info["recipes"]["quantize"]["applicable"] is True
    assert events[-1] == {"kind": "progress", "done": 100, "total": 100, "stage": "done"}
    assert {"kind": "stage", "name": "load"} in events


def test_run_quantizes_and_writes_artifacts(run_sandbox, mlp_pt, tmp_path):
    out_dir = tmp_path / "out"
    finished, events, final = run_sandbox(
        action="run", model_path=str(mlp_pt), input_shape=[1, 256], input_dtype="float32",
        recipe="quantize", config={"per_channel": True}, out_dir=str(out_dir),
    )
    assert finished.returncode == 0, finished.stderr
    result = final["result"]
    # A TorchScript-quantized module has no other format: the skips say why.
    assert result["artifacts"] == ["model.pt", "report.json"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.pt", "report.json"]
    assert result["formats"]["written"] == {"torchscript": "model.pt"}
    assert sorted(result["formats"]["skipped"]) == ["export", "onnx", "safetensors"]
    report = json.loads((out_dir / "report.json").read_text())
    assert report == {key: value for key, value in result.items() if key != "artifacts"}
    assert report["config"]["variant"] == "dynamic_int8" and report["config"]["per_channel"] is True
    assert report["before"]["size_bytes"] == mlp_pt.stat().st_size
    assert report["after"]["size_bytes"] == (out_dir / "model.pt").stat().st_size
    assert report["ratios"]["size"] <= 0.5
    assert report["after"]["params"] == report["before"]["params"]
    assert report["max_abs_diff"] <= 0.05 * report["reference_max_abs"]
    assert report["threads"] == 1 and report["notes"]
    stages = [event["name"] for event in events if event["kind"] == "stage"]
    assert stages == ["load", "measure original", "quantize", "save", "measure optimized"]
    done = [event["done"] for event in events if event["kind"] == "progress"]
    assert done == sorted(done) and done[-1] == 100


def test_run_on_export_model_writes_pt2(run_sandbox, mlp_pt2, tmp_path):
    finished, _, final = run_sandbox(
        action="run", model_path=str(mlp_pt2), input_shape=[1, 256], recipe="quantize", config={},
        out_dir=str(tmp_path / "out"),
    )
    assert finished.returncode == 0, finished.stderr
    # The upload's format first, then every other format the int8 graph takes.
    assert final["result"]["artifacts"] == ["model.pt2", "model.pt", "model.onnx", "report.json"]
    assert final["result"]["formats"]["skipped"] == {
        "safetensors": "safetensors holds weights only; it is written for models built from a named architecture"}
    assert final["result"]["ratios"]["size"] <= 0.5


def test_wrong_input_shape_is_a_clear_error(run_sandbox, cnn_pt):
    finished, _, final = run_sandbox(action="inspect", model_path=str(cnn_pt), input_shape=[1, 3, 28])
    assert finished.returncode == 1
    assert final["error_type"] == "ModelInputError"
    assert final["error"].startswith("the model rejected an input of shape [1,3,28] (float32): ")
    assert "\n" not in final["error"]


def test_bad_settings_fail_before_loading(run_sandbox, tmp_path):
    finished, events, final = run_sandbox(
        action="run", model_path=str(tmp_path / "not-even-there.pt"), input_shape=[1, 256],
        recipe="quantize", config={"per_channel": "yes"}, out_dir=str(tmp_path / "out"),
    )
    assert finished.returncode == 1
    assert final == {
        "kind": "error", "error": "per_channel: must be a boolean; got 'yes'", "error_type": "ConfigError",
    }
    assert not [event for event in events if event.get("name") == "load"]


def test_not_a_model_is_a_model_file_error(run_sandbox, tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    finished, _, final = run_sandbox(action="inspect", model_path=str(path), input_shape=[1, 3])
    assert finished.returncode == 1
    assert final == {
        "kind": "error", "error_type": "ModelFileError",
        "error": "not a model file Slimforge reads (TorchScript, torch.export, ONNX, safetensors, or a zipped "
                 "Hugging Face folder): it looks like a PNG image",
    }


def test_prints_from_model_code_do_not_corrupt_the_event_stream(run_sandbox, chatty_pt):
    finished, _, final = run_sandbox(action="inspect", model_path=str(chatty_pt), input_shape=[2, 16])
    assert finished.returncode == 0, finished.stderr
    assert final["result"]["output_shape"] == [2, 4]
    assert "hello from inside the model" in finished.stderr
    assert "hello" not in finished.stdout


@pytest.fixture
def zoo_mlp_safetensors(tmp_path):
    path = tmp_path / "upload-5a1e"  # a server-made name: the format comes from the bytes
    safetensors.torch.save_file(build_model(ZOO_MLP["name"], ZOO_MLP["config"]).state_dict(), str(path))
    return path


def test_inspect_a_safetensors_upload_with_its_architecture(run_sandbox, zoo_mlp_safetensors):
    finished, _, final = run_sandbox(action="inspect", model_path=str(zoo_mlp_safetensors), input_shape=[1, 16],
                                     architecture=ZOO_MLP)
    assert finished.returncode == 0, finished.stderr
    info = final["result"]
    assert info["format"] == "safetensors"
    assert info["params"] == 16 * 8 + 8 + 8 * 3 + 3
    assert info["output_shape"] == [1, 3]


def test_a_safetensors_upload_without_architecture_is_a_clear_error(run_sandbox, zoo_mlp_safetensors):
    finished, _, final = run_sandbox(action="inspect", model_path=str(zoo_mlp_safetensors), input_shape=[1, 16])
    assert finished.returncode == 1
    assert final == {"kind": "error", "error_type": "ModelFileError",
                     "error": "a safetensors file holds weights only: choose the model's architecture to load it"}


def test_inspect_an_onnx_upload(run_sandbox, tmp_path):
    path = linear_onnx(tmp_path / "upload-0nnx")
    finished, _, final = run_sandbox(action="inspect", model_path=str(path), input_shape=[2, 4])
    assert finished.returncode == 0, finished.stderr
    info = final["result"]
    assert (info["format"], info["params"], info["output_shape"]) == ("onnx", 15, [2, 3])
    assert info["recipes"]["prune"] == {"applicable": False, "reason": ONNX_NOT_PRUNABLE}
    assert info["recipes"]["quantize"]["variants"]["onnx_dynamic_int8"]["applicable"]


def test_dataset_jobs_go_to_the_dataset_reader(run_sandbox, tmp_path):
    out_dir = tmp_path / "dataset"
    finished, _, final = run_sandbox(action="dataset", dataset_kind="digits", out_dir=str(out_dir))
    assert finished.returncode == 0, finished.stderr
    assert final["result"]["samples"] == 1797 and "dataset.npz" in final["result"]["files"]
    assert (out_dir / "dataset.npz").is_file()
