"""measure_model on small networks whose figures are computed by hand."""

import json
import time
import warnings

import pytest
import torch
from torch import nn

from optimizers.measure.report import compare_reports, measure_model, reference_outputs

# Linear(64,256) + ReLU + Linear(256,10): weights and biases, and one multiply-accumulate per weight.
MLP64_PARAMS = 64 * 256 + 256 + 256 * 10 + 10
MLP64_MACS = 64 * 256 + 256 * 10
# Conv2d(1,8,3,padding=1) on 1x1x8x8: 8 output channels x 8x8 positions x (1 input channel x 3x3 kernel).
CONV_MACS = 8 * (8 * 8) * (1 * 3 * 3)
CONV_PARAMS = 8 * 1 * 3 * 3 + 8

REPORT_KEYS = {
    "size_bytes", "params", "nonzero_params", "macs", "macs_note", "latency_ms", "latency_note", "latency_ms_p50",
    "latency_ms_p95", "throughput_per_s", "throughput_batch", "peak_memory_mb", "memory_note", "threads",
    "evaluated_on", "accuracy", "agreement_top1", "output_error", "quality_note", "energy_j_per_1000",
    "energy_note", "device",
}


def mlp64() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).eval()


def conv8() -> nn.Module:
    torch.manual_seed(0)
    return nn.Conv2d(1, 8, 3, padding=1).eval()


def saved_script(model: nn.Module, path) -> torch.jit.ScriptModule:
    scripted = torch.jit.script(model)
    torch.jit.save(scripted, str(path))
    return torch.jit.load(str(path)).eval()


def quantized_script(model: nn.Module) -> torch.jit.ScriptModule:
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic_jit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic_jit(torch.jit.script(model), {"": default_dynamic_qconfig})


@pytest.fixture(scope="module")
def example() -> torch.Tensor:
    return torch.randn(1, 64, generator=torch.Generator().manual_seed(1))


def test_the_report_has_every_key_and_is_json(example, tmp_path):
    model, path = mlp64(), tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    report = measure_model(model, example, path, reference=reference_outputs(model, example), time_budget_s=10)
    assert set(report) == REPORT_KEYS
    json.dumps(report, allow_nan=False)
    assert report["size_bytes"] == path.stat().st_size
    assert (report["params"], report["nonzero_params"], report["macs"]) == (MLP64_PARAMS, MLP64_PARAMS, MLP64_MACS)
    b1, b32 = report["latency_ms"]["batch_1"], report["latency_ms"]["batch_32"]
    assert 0 < b1["p50"] <= b1["p95"] and 0 < b32["p50"] <= b32["p95"]
    assert report["throughput_batch"] == 32
    assert report["throughput_per_s"] == pytest.approx(32_000 / b32["p50"], rel=1e-3)
    assert report["peak_memory_mb"] >= 0 and "RSS" in report["memory_note"]
    assert (report["threads"], report["device"]) == (torch.get_num_threads(), "cpu")
    assert report["energy_j_per_1000"] is None and "CUDA" in report["energy_note"]
    # Measured against its own outputs: identical, so agreement is total and SQNR is infinite (None).
    assert report["agreement_top1"] == 1.0
    assert report["output_error"]["max_abs"] == 0.0 and report["output_error"]["identical"] is True
    assert report["output_error"]["sqnr_db"] is None
    assert report["evaluated_on"] == "example" and report["accuracy"] is None


@pytest.mark.parametrize("form", ["eager", "torchscript", "export", "quantized torchscript"])
def test_params_and_macs_by_hand_in_every_form(form, example, tmp_path):
    model = {
        "eager": mlp64,
        "torchscript": lambda: saved_script(mlp64(), tmp_path / "m.pt"),
        "export": lambda: torch.export.export(mlp64(), (example,)).module(),
        "quantized torchscript": lambda: quantized_script(mlp64()),
    }[form]()
    report = measure_model(model, example, __file__, time_budget_s=10)
    assert report["params"] == MLP64_PARAMS
    assert report["macs"] == MLP64_MACS and report["macs_note"] is None


def test_conv_macs_by_hand():
    report = measure_model(conv8(), torch.randn(1, 1, 8, 8), __file__, time_budget_s=10)
    assert (report["params"], report["macs"]) == (CONV_PARAMS, CONV_MACS)


def test_nonzero_params_count_what_pruning_zeroed(example):
    model = mlp64()
    with torch.no_grad():
        model[0].weight[:100].zero_()  # 100 rows of 64 weights
    report = measure_model(model, example, __file__, time_budget_s=10)
    assert report["nonzero_params"] == MLP64_PARAMS - 100 * 64
    quantized = measure_model(quantized_script(model), example, __file__, time_budget_s=10)
    # Packed int8 weights are counted too; rounding to int8 also zeroes a few of the tiniest weights.
    assert 0.99 * (MLP64_PARAMS - 100 * 64) < quantized["nonzero_params"] <= MLP64_PARAMS - 100 * 64


def test_a_static_batch_leaves_batch_32_empty_with_a_note(example):
    exported = torch.export.export(mlp64(), (example,)).module()  # the batch of 1 is baked in
    report = measure_model(exported, example, __file__, reference=reference_outputs(mlp64(), example),
                           time_budget_s=10)
    assert report["latency_ms"]["batch_32"] is None
    assert report["latency_note"].startswith("the model does not take a batch of 32")
    assert report["throughput_batch"] == 1
    assert report["throughput_per_s"] == pytest.approx(1000 / report["latency_ms"]["batch_1"]["p50"], rel=1e-3)
    assert report["agreement_top1"] == 1.0


def test_an_example_that_is_not_batch_1_is_not_repeated(tmp_path):
    report = measure_model(mlp64(), torch.randn(4, 64), __file__, time_budget_s=10)
    assert report["latency_ms"]["batch_32"] is None and "[4, 64]" in report["latency_note"]
    assert report["throughput_batch"] == 4


def test_fidelity_against_the_original(example):
    original, changed = mlp64(), mlp64()
    with torch.no_grad():
        changed[2].bias += 0.01
    reference = reference_outputs(original, example)
    report = measure_model(changed, example, __file__, reference=reference, time_budget_s=10)
    error = report["output_error"]
    assert error["max_abs"] == pytest.approx(0.01, abs=1e-6) and error["identical"] is False
    signal = reference.double().square().sum().item()
    assert error["sqnr_db"] == pytest.approx(10 * torch.log10(torch.tensor(signal / (10 * 0.01**2))).item(), abs=1e-2)
    assert report["agreement_top1"] in (0.0, 1.0)


def test_tuple_outputs_are_judged_by_their_first_tensor():
    class TwoHeads(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x * 2, x.sum(dim=1)

    report = measure_model(TwoHeads(), torch.ones(1, 3), __file__, reference=torch.full((1, 3), 2.0),
                           time_budget_s=10)
    assert report["output_error"]["max_abs"] == 0.0 and report["macs"] == 0


def test_peak_memory_sees_large_activations():
    wide = nn.Linear(64, 65536).eval()  # batch 32 makes an 8 MiB output per call
    report = measure_model(wide, torch.randn(1, 64), __file__, time_budget_s=10)
    assert report["throughput_batch"] == 32, report["latency_note"]
    assert report["peak_memory_mb"] >= 6


def test_a_slow_model_stays_within_the_time_budget():
    class Slow(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            time.sleep(0.05)
            return x

    started = time.perf_counter()
    report = measure_model(Slow(), torch.randn(1, 4), __file__, time_budget_s=0.5)
    assert report["latency_ms"]["batch_1"]["runs"] == 3
    # 32 x 50 ms per call would not fit a 0.15 s latency budget: batch 32 is skipped, not run.
    assert report["latency_ms"]["batch_32"] is None and "would not fit the time budget" in report["latency_note"]
    assert time.perf_counter() - started < 1.5  # MACs pass, warm-up, 3 runs, 2 evaluation calls


def test_compare_reports_gives_after_over_before_and_none_when_unknown():
    before = {"size_bytes": 1000, "params": 100, "nonzero_params": 100, "macs": 50,
              "latency_ms": {"batch_1": {"p50": 2.0}, "batch_32": {"p50": 10.0}},
              "throughput_per_s": 3200.0, "peak_memory_mb": 0.0, "energy_j_per_1000": None}
    after = {"size_bytes": 250, "params": 100, "nonzero_params": 40, "macs": None,
             "latency_ms": {"batch_1": {"p50": 1.0}, "batch_32": None},
             "throughput_per_s": 6400.0, "peak_memory_mb": 1.0, "energy_j_per_1000": 2.0}
    assert compare_reports(before, after) == {
        "size": 0.25, "params": 1.0, "nonzero_params": 0.4, "macs": None, "latency_p50_batch_1": 0.5,
        "latency_p50_batch_32": None, "throughput": 2.0, "peak_memory": None, "energy": None,
        "perplexity": None, "time_to_first_token": None, "tokens_per_s_batch_1": None,  # language models only
    }
