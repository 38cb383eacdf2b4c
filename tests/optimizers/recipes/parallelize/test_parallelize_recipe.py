"""The plan search for real on a small CNN: the plan is the measured best, the budget holds, the served file runs."""
import json
import os
import subprocess
import sys

import pytest
import torch

from optimizers.configs import ConfigError, parse_config
from optimizers.configs.parallelize import ParallelizeConfig
from optimizers.errors import RecipeError
from optimizers.recipes.parallelize.recipe import ONNX_REFUSED, parallelize, parallelize_applies
from optimizers.recipes.parallelize.replicas import time_replicas
from optimizers.recipes.parallelize.search import Setting
from optimizers.recipes.parallelize.serving import serving_snippet
from optimizers.reporters import ListReporter
from optimizers.zoo.models import build_model

EXAMPLE = torch.zeros(1, 1, 8, 8)
QUICK = {"device": "cpu", "batch_sizes": (1, 8, 32), "threads": (1, 2), "repeats": 5}


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return build_model("small_cnn", {"channels": [16, 32]})


def test_the_chosen_plan_is_the_best_point_measured_and_the_baseline_is_batch_one(cnn):
    before = {name: tensor.clone() for name, tensor in cnn.state_dict().items()}
    report = ListReporter()
    result = parallelize(cnn, None, ParallelizeConfig(**QUICK), report, example=EXAMPLE)
    found = result.extras["plan_search"]
    points = found["points"]
    assert found["plan"] == max(points, key=lambda point: point["throughput_per_s"])
    assert found["baseline"] == next(p for p in points if (p["variant"], p["threads"], p["batch"]) == ("eager", 1, 1))
    assert found["speedup"] == pytest.approx(found["plan"]["throughput_per_s"] / found["baseline"]["throughput_per_s"],
                                             rel=1e-3)
    assert {p["variant"] for p in points} == {"eager", "channels_last"}
    assert json.loads(result.extra_files["plan.json"]) == found
    metrics = [e for e in report.events if e["kind"] == "metric" and e["name"] == "plan/throughput_per_s"]
    assert len(metrics) == len(points)
    assert all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())  # the upload is untouched
    # The result is the same weights, in channels-last memory format when that is the plan (see test_saved_form).
    assert all(torch.equal(before[k], v) for k, v in result.model.state_dict().items())
    assert (result.model is cnn) == (found["plan"]["variant"] != "channels_last")


def test_the_budget_holds_and_is_a_clear_refusal_when_nothing_meets_it(cnn):
    free = parallelize(cnn, None, ParallelizeConfig(**QUICK), ListReporter(), example=EXAMPLE).extras["plan_search"]
    # Roomy for batch 1, too tight for the largest batches (judged on this machine, in this run)
    budget = round(5 * min(p["p95_ms"] for p in free["points"] if p["batch"] == 1), 3)
    result = parallelize(cnn, None, ParallelizeConfig(**QUICK, p95_budget_ms=budget), ListReporter(), example=EXAMPLE)
    found = result.extras["plan_search"]
    within = [p for p in found["points"] if p["p95_ms"] <= budget]
    assert found["plan"]["p95_ms"] <= budget
    assert found["plan"] == max(within, key=lambda point: point["throughput_per_s"])
    with pytest.raises(RecipeError, match="no point met the p95 budget of 0.0001 ms"):
        parallelize(cnn, None, ParallelizeConfig(**QUICK, p95_budget_ms=0.0001), ListReporter(), example=EXAMPLE)


def test_the_served_file_runs_beside_the_saved_model(cnn, tmp_path):
    config = ParallelizeConfig(device="cpu", batch_sizes=(1, 4), threads=(1,), repeats=3)
    result = parallelize(cnn, None, config, ListReporter(), example=EXAMPLE)
    torch.jit.save(torch.jit.trace(cnn, EXAMPLE), str(tmp_path / "model.pt"))
    (tmp_path / "serve_plan.py").write_bytes(result.extra_files["serve_plan.py"])
    finished = subprocess.run([sys.executable, "serve_plan.py"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
    assert finished.returncode == 0, finished.stderr
    plan = result.extras["plan_search"]["plan"]
    batch, replicas = plan["batch"], plan["replicas"]
    assert f"served {2 * batch * replicas + 1} samples in batches of {batch} on {replicas} process(es)" in \
        finished.stdout


def test_the_served_file_runs_a_replica_plan_in_that_many_processes(cnn, tmp_path):
    torch.jit.save(torch.jit.trace(cnn, EXAMPLE), str(tmp_path / "model.pt"))
    (tmp_path / "serve_plan.py").write_text(serving_snippet(Setting("channels_last", 1, 4, 2), EXAMPLE))
    finished = subprocess.run([sys.executable, "serve_plan.py"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert "served 17 samples in batches of 4 on 2 process(es) of 1 thread(s)" in finished.stdout


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_replica_processes_are_measured_serving_at_once(cnn):
    config = ParallelizeConfig(device="cpu", batch_sizes=(1, 8), threads=(1,), replicas=(2, 64), repeats=5,
                               channels_last=False)
    result = parallelize(cnn, None, config, ListReporter(), example=EXAMPLE)
    points = result.extras["plan_search"]["points"]
    assert [(p["threads"], p["replicas"]) for p in points if p["batch"] == 1] == [(1, 1), (1, 2)]
    two = next(p for p in points if p["replicas"] == 2 and p["batch"] == 1)
    assert two["runs"] == 2 * 5 and two["throughput_per_s"] == pytest.approx(2 * 1000 / two["p50_ms"], rel=1e-3)
    assert any("replica counts [64] skipped" in note for note in result.notes)


def test_a_replica_that_fails_says_why():
    def broken(batch):
        raise ValueError("this model refuses to be served")
    with pytest.raises(RuntimeError, match="ValueError: this model refuses to be served"):
        time_replicas(broken, EXAMPLE, replicas=2, repeats=3)


def test_what_does_not_apply_is_said(cnn):
    scripted = torch.jit.trace(cnn, EXAMPLE)
    result = parallelize(scripted, None, ParallelizeConfig(device="cpu", batch_sizes=(1,), threads=(1, 200), repeats=3),
                         ListReporter(), example=EXAMPLE)
    assert any("channels-last skipped" in note for note in result.notes)
    assert any("thread counts [200] skipped" in note for note in result.notes)
    onnx_like = type("OnnxModel", (), {"onnx_path": "m.onnx"})()
    assert parallelize_applies(onnx_like) == (False, ONNX_REFUSED)
    with pytest.raises(ConfigError, match="each batch size once"):
        parse_config("parallelize", {"batch_sizes": [8, 8]})
