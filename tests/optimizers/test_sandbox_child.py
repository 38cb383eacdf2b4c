"""The sandbox child as the worker runs it: a real subprocess, JSON lines on stdout."""

import json

import pytest

from optimizers.formats import load_model
from optimizers.measure import count_parameters


@pytest.fixture
def run_sandbox(run_python, tmp_path):
    def run(**spec):
        spec_path = tmp_path / "spec.json"
        spec_path.write_text(json.dumps(spec))
        finished = run_python("-m", "optimizers.sandbox", str(spec_path))
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
    assert result["artifacts"] == ["model.pt", "report.json"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["model.pt", "report.json"]
    report = json.loads((out_dir / "report.json").read_text())
    assert report == {key: value for key, value in result.items() if key != "artifacts"}
    assert report["config"] == {"variant": "dynamic_int8", "per_channel": True, "layers": "linear"}
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
    assert final["result"]["artifacts"] == ["model.pt2", "report.json"]
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
        "kind": "error", "error": "not a TorchScript or torch.export archive: not a zip archive",
        "error_type": "ModelFileError",
    }


def test_prints_from_model_code_do_not_corrupt_the_event_stream(run_sandbox, chatty_pt):
    finished, _, final = run_sandbox(action="inspect", model_path=str(chatty_pt), input_shape=[2, 16])
    assert finished.returncode == 0, finished.stderr
    assert final["result"]["output_shape"] == [2, 4]
    assert "hello from inside the model" in finished.stderr
    assert "hello" not in finished.stdout
