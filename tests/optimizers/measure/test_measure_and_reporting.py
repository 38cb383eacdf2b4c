import io
import json

import pytest
import torch

from optimizers.errors import Cancelled
from optimizers.formats.model_io import load_model
from optimizers.measure.inference import count_parameters, latency_ms, max_abs_diff, percentile, run_model
from optimizers.reporters import JobSteps, JsonLinesReporter, ListReporter, SubtaskReporter
from tests.optimizers.models import MLP, MLP_INPUT, build


def test_count_parameters_matches_numel_for_every_format(mlp_pt, mlp_pt2):
    expected = sum(p.numel() for p in build(MLP).parameters())
    assert count_parameters(build(MLP)) == expected == 256 * 512 + 512 + 512 * 10 + 10
    assert count_parameters(load_model(mlp_pt)[0]) == expected
    assert count_parameters(load_model(mlp_pt2)[0]) == expected


def test_latency_reports_percentiles_and_threads():
    timings = latency_ms(build(MLP), torch.randn(MLP_INPUT), repeats=7, warmup=1)
    assert set(timings) == {"p50", "p95", "threads", "runs"}
    assert timings["runs"] == 7
    assert 0 < timings["p50"] <= timings["p95"]
    assert timings["threads"] == torch.get_num_threads()


def test_latency_stops_at_its_time_budget():
    assert latency_ms(build(MLP), torch.randn(MLP_INPUT), repeats=1000, warmup=1, budget_s=0.0)["runs"] == 3


def test_count_parameters_skips_torchscript_containers_without_code():
    class Stack(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks:
                x = block(x)
            return x

    assert count_parameters(torch.jit.script(Stack())) == 2 * (16 + 4)


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 21)]
    assert (percentile(values, 50), percentile(values, 95), percentile([3.0], 95)) == (10.0, 19.0, 3.0)


def test_max_abs_diff_walks_nested_outputs():
    a = (torch.zeros(2), {"logits": torch.ones(3)})
    b = (torch.full((2,), 0.25), {"logits": torch.ones(3) * 0.5})
    assert max_abs_diff(a, b) == 0.5
    with pytest.raises(ValueError, match="output shapes differ"):
        max_abs_diff(torch.zeros(2), torch.zeros(3))


def test_torchscript_runs_under_inference_after_a_grad_run(mlp_pt):
    # A TorchScript module first called with grad enabled breaks under inference_mode;
    # run_model must cope because user code may have done exactly that.
    model, _ = load_model(mlp_pt)
    example = torch.randn(MLP_INPUT)
    model(example)
    model(example)
    torch.testing.assert_close(run_model(model, example), model(example).detach())


def test_json_lines_reporter_writes_one_event_per_line():
    stream = io.StringIO()
    reporter = JsonLinesReporter(stream)
    reporter.stage("load")
    reporter.progress(1, 5, "load")
    reporter.metric("train/loss", 3, float("nan"))
    reporter.log("hello\nworld")
    lines = stream.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"kind": "stage", "name": "load"},
        {"kind": "progress", "done": 1, "total": 5, "stage": "load"},
        {"kind": "metric", "name": "train/loss", "step": 3, "value": None},
        {"kind": "log", "message": "hello\nworld"},
    ]
    assert reporter.cancelled() is False
    reporter.cancel_event.set()
    assert reporter.cancelled() is True


def test_subtask_progress_fills_its_slice_of_the_bar():
    parent = ListReporter()
    sub = SubtaskReporter(parent, 40, 60, 100, step="quantize")
    sub.stage("quantize")  # already announced by the job
    sub.progress(1, 4, "quantize")
    sub.progress(4, 4, "quantize")
    sub.progress(3, 0, "quantize")
    assert parent.events == [
        {"kind": "progress", "done": 45, "total": 100, "stage": "quantize"},
        {"kind": "progress", "done": 60, "total": 100, "stage": "quantize"},
        {"kind": "progress", "done": 40, "total": 100, "stage": "quantize"},
    ]


def test_job_steps_announce_each_step_and_stop_when_cancelled():
    report = ListReporter()
    steps = JobSteps(report, ["load", "measure"])
    steps.begin("load")
    steps.begin("measure")
    steps.finish()
    assert [e.get("done") for e in report.events if e["kind"] == "progress"] == [0, 50, 100]
    report.cancel_requested = True
    with pytest.raises(Cancelled):
        steps.begin("measure")


def _static_int8_cnn():
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from optimizers.zoo.models import build_model

    model = build_model("small_cnn", {})
    example = torch.randn(1, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (example,))
        prepared(torch.randn(8, 1, 8, 8))
        return model, torch.jit.trace(convert_fx(prepared), example), example


def test_a_model_with_ops_that_have_no_mac_formula_gets_no_partial_count():
    from optimizers.measure.macs import count_macs

    _, traced, example = _static_int8_cnn()
    macs, note = count_macs(traced, example)
    assert macs is None and "quantized::conv2d" in note


def test_static_int8_conv_weights_are_counted_from_their_packed_form():
    model, traced, _ = _static_int8_cnn()
    # Batch norm is folded into the convolutions: its parameters go, each convolution gains a bias.
    folded = sum(m.weight.numel() + m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    folded += sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) for p in m.parameters())
    assert count_parameters(traced) == folded


def test_counting_macs_in_a_fresh_process_neither_imports_dynamo_nor_leaves_torch_changed(run_python):
    # torch imports torch._dynamo on a dispatch mode's first use: a second of every sandbox child, saved.
    finished = run_python("-c", """
import sys, torch
from torch.utils import flop_counter
from optimizers.measure.macs import count_macs
model = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)))
print(count_macs(model, torch.randn(4, 64)), "torch._dynamo" in sys.modules,
      hasattr(flop_counter._FlopCounterMode.__torch_dispatch__.__wrapped__, "__dynamo_disable"))
""")
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split() == ["(9472,", "None)", "False", "False"]  # 4 * (64*32 + 32*10) MACs
