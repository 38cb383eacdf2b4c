"""The job description the worker hands the sandbox child: checked on both sides, round-tripped through JSON."""
import pytest

from optimizers.job_spec import JobSpec, SpecError

ZOO_MLP = {"name": "mlp", "config": {"in_features": 16, "hidden": [8], "num_classes": 3}}


def test_spec_with_architecture_and_dataset_round_trips():
    data = {"action": "run", "model_path": "m", "input_shape": [1, 16], "recipe": "quantize", "out_dir": "o",
            "architecture": ZOO_MLP, "dataset_path": "d/dataset.npz"}
    spec = JobSpec.from_dict(data)
    assert (spec.architecture, spec.dataset_path) == (ZOO_MLP, "d/dataset.npz")
    assert JobSpec.from_dict(spec.to_dict()) == spec
    assert JobSpec.from_dict({**data, "architecture": {"name": "mlp"}}).architecture == {"name": "mlp", "config": {}}


def test_dataset_spec_needs_no_model():
    spec = JobSpec.from_dict({"action": "dataset", "dataset_kind": "csv", "dataset_source": "u.csv",
                              "dataset_options": {"label_column": "label"}, "out_dir": "o"})
    assert (spec.dataset_kind, spec.dataset_source, spec.dataset_options) == ("csv", "u.csv", {"label_column": "label"})
    assert (spec.model_path, spec.input_shape) == ("", ())
    assert JobSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("changes, problem", [
    ({"architecture": "resnet"}, "architecture must be an object with a non-empty name"),
    ({"architecture": {"name": ""}}, "architecture must be an object with a non-empty name"),
    ({"architecture": {"name": "mlp", "config": [1]}}, "architecture config must be an object"),
    ({"architecture": {"name": "mlp", "layers": 3}}, "unknown job spec architecture keys: layers"),
    ({"dataset_path": ""}, "dataset_path must be a non-empty string"),
    ({"action": "train"}, "action must be one of inspect, run, dataset, ranks"),
])
def test_malformed_model_specs(changes, problem):
    with pytest.raises(SpecError, match=problem):
        JobSpec.from_dict({"action": "inspect", "model_path": "m", "input_shape": [1], **changes})


@pytest.mark.parametrize("changes, problem", [
    ({"dataset_kind": "parquet"}, "dataset_kind must be one of npz, csv, images, digits"),
    ({"dataset_source": None}, "dataset_source must be a non-empty string for dataset_kind npz"),
    ({"dataset_options": []}, "dataset_options must be an object"),
    ({"out_dir": None}, "out_dir must be a non-empty string for action dataset"),
])
def test_malformed_dataset_specs(changes, problem):
    data = {"action": "dataset", "dataset_kind": "npz", "dataset_source": "x.npz", "out_dir": "o", **changes}
    with pytest.raises(SpecError, match=problem):
        JobSpec.from_dict({key: value for key, value in data.items() if value is not None})


def test_digits_need_no_source():
    assert JobSpec.from_dict({"action": "dataset", "dataset_kind": "digits", "out_dir": "o"}).dataset_source is None


def test_the_worker_builds_a_checked_spec_and_a_wrong_key_fails_there():
    spec = JobSpec.build(action="inspect", model_path="m", input_shape=[1, 16], input_dtype="float32")
    assert spec.input_shape == (1, 16) and JobSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(SpecError, match="unknown job spec keys: modle_path"):
        JobSpec.build(action="inspect", modle_path="m", input_shape=[1, 16])
    with pytest.raises(SpecError, match="input shape dimension 0 must be at least 1"):
        JobSpec.build(action="inspect", model_path="m", input_shape=[0, -1])


def test_other_models_travel_by_role_with_their_architecture():
    data = {"action": "run", "model_path": "m", "input_shape": [1, 16], "recipe": "distill", "out_dir": "o",
            "models": {"student": {"path": "s.bin", "architecture": ZOO_MLP}}}
    spec = JobSpec.from_dict(data)
    assert spec.models == {"student": {"path": "s.bin", "architecture": ZOO_MLP}}
    assert JobSpec.from_dict(spec.to_dict()) == spec
    for models, problem in (([], "models must be an object of roles"),
                            ({"student": {"path": ""}}, "model 'student' must be an object with a non-empty path"),
                            ({"student": {"path": "s", "owner": 1}}, "unknown job spec model keys: owner")):
        with pytest.raises(SpecError, match=problem):
            JobSpec.from_dict({**data, "models": models})


HOSTS = {"count": 2, "node": 0, "address": "10.0.0.5", "port": 29500, "interface": "eth0", "wait_s": 300,
         "secret": "0f" * 32}


def test_a_job_on_two_hosts_runs_on_the_first_and_the_second_runs_replicas_only():
    run = JobSpec.from_dict({"action": "run", "model_path": "m", "input_shape": [1, 16], "recipe": "prune",
                             "out_dir": "o", "hosts": HOSTS})
    assert run.hosts == HOSTS and JobSpec.from_dict(run.to_dict()) == run
    ranks = JobSpec.from_dict({"action": "ranks", "out_dir": "scratch", "hosts": {**HOSTS, "node": 1}})
    assert (ranks.model_path, ranks.files_read(), ranks.folders_written()) == ("", [], ["scratch"])


@pytest.mark.parametrize("action, hosts, problem", [
    ("ranks", None, "action ranks needs hosts"),
    ("ranks", HOSTS, "the first host \\(node 0\\) runs the job, the others action ranks; got node 0 for action ranks"),
    ("run", {**HOSTS, "node": 1}, "got node 1 for action run"),
    ("run", {**HOSTS, "node": 2}, "node 0..count-1"),
    ("run", {**HOSTS, "count": 1}, "count 2..64"),
    ("run", {**HOSTS, "port": 0}, "port 1..65535"),
    ("run", {**HOSTS, "port": "29500"}, "count, node and port must be integers"),
    ("run", {**HOSTS, "address": "gpu-host-1"}, "address must be an IP address; got 'gpu-host-1'"),
    ("run", {**HOSTS, "interface": ""}, "interface must be a non-empty string"),
    ("run", {**HOSTS, "wait_s": 0}, "wait_s must be a positive number"),
    ("run", {**HOSTS, "extra": 1}, "hosts must be an object of exactly"),
    ("run", {**HOSTS, "secret": "0F" * 32}, "secret must be 64 lowercase hex digits"),
    ("run", {**HOSTS, "secret": "0f" * 8}, "secret must be 64 lowercase hex digits"),
])
def test_malformed_hosts(action, hosts, problem):
    data = {"action": action, "model_path": "m", "input_shape": [1], "out_dir": "o", "hosts": hosts}
    with pytest.raises(SpecError, match=problem):
        JobSpec.from_dict({key: value for key, value in data.items() if value is not None})
