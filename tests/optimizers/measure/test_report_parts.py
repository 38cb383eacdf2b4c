"""The pieces of the report that need no whole model: fidelity arithmetic, evaluation batching, meters."""

import pytest
import torch
from torch import nn

from optimizers.measure.fidelity import (
    EVAL_BATCH,
    EvalInputs,
    accuracy_top1,
    agreement_top1,
    model_outputs,
    output_error,
)
from optimizers.measure.meters import EnergyCounter, energy_j_per_1000, peak_memory
from optimizers.measure.report import measure_model


def test_sqnr_of_a_known_noise_is_20_db():
    reference = torch.ones(100)
    error = output_error(reference + 0.1, reference)  # signal 100, noise 100 x 0.01 = 1
    assert error["sqnr_db"] == pytest.approx(20.0, abs=1e-3)
    assert error["max_abs"] == pytest.approx(0.1) and error["identical"] is False


def test_identical_outputs_and_nan_outputs_stay_json_safe():
    same = output_error(torch.ones(3), torch.ones(3))
    assert (same["sqnr_db"], same["max_abs"], same["identical"]) == (None, 0.0, True)
    broken = output_error(torch.tensor([float("nan"), 1.0]), torch.ones(2))
    assert broken["sqnr_db"] is None and broken["max_abs"] is None


def test_agreement_and_accuracy_count_top1_matches():
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    reference = torch.tensor([[0.8, 0.2], [0.1, 0.9], [0.1, 0.9], [0.6, 0.4]])
    assert agreement_top1(scores, reference) == 0.5
    assert accuracy_top1(scores, torch.tensor([0, 1, 1, 1])) == (0.75, None)
    assert agreement_top1(torch.ones(4, 1), torch.ones(4, 1)) is None  # one score per sample: no classes


def test_accuracy_refuses_labels_the_outputs_cannot_express():
    accuracy, note = accuracy_top1(torch.zeros(2, 3), torch.tensor([0, 7]))
    assert accuracy is None and note == "the labels go up to 7 but the model returns 3 scores"
    accuracy, note = accuracy_top1(torch.zeros(2, 3, 4), torch.tensor([0, 1]))
    assert accuracy is None and "[samples, classes]" in note


class FixedBatch(nn.Module):
    """Accepts only a batch of 1, like a program exported without a dynamic batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:
            raise RuntimeError(f"expected batch 1, got {x.shape[0]}")
        return x * 3


def test_evaluation_runs_in_chunks_and_falls_back_to_a_fixed_batch():
    inputs = torch.arange(EVAL_BATCH + 10, dtype=torch.float32).reshape(-1, 1)
    outputs = model_outputs(nn.Identity(), EvalInputs(inputs, None, "example"), static_batch=1, budget_s=10)
    assert torch.equal(outputs.values, inputs) and outputs.note is None
    fixed = model_outputs(FixedBatch(), EvalInputs(inputs[:20], None, "example"), static_batch=1, budget_s=10)
    assert torch.equal(fixed.values, inputs[:20] * 3)


def test_a_fixed_batch_that_does_not_divide_the_samples_keeps_what_it_has():
    class FixedBatchOf4(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] != 4:
                raise RuntimeError(f"expected batch 4, got {x.shape[0]}")
            return x

    outputs = model_outputs(FixedBatchOf4(), EvalInputs(torch.zeros(10, 1), None, "example"), static_batch=4,
                            budget_s=10)
    assert len(outputs.values) == 8
    assert outputs.note == "evaluated on the first 8 of 10 samples (the model takes only batches of 4)"


def test_evaluation_stops_at_its_budget_and_says_so():
    outputs = model_outputs(FixedBatch(), EvalInputs(torch.zeros(50, 1), None, "example"), static_batch=1,
                            budget_s=0.0)
    assert len(outputs.values) == 1
    assert outputs.note == "evaluated on the first 1 of 50 samples (time budget)"


def test_energy_per_1000_inferences_from_the_counter():
    assert energy_j_per_1000(start_mj=10_000, end_mj=12_000, inferences=500) == 4.0  # 2 J / 500 x 1000
    assert energy_j_per_1000(start_mj=12_000, end_mj=10_000, inferences=500) is None  # counter reset
    assert energy_j_per_1000(start_mj=0, end_mj=10, inferences=0) is None


def test_the_energy_loop_divides_the_counter_by_the_samples_run(monkeypatch):
    """The CUDA path on the CPU: a stand-in counter and a no-op synchronize."""
    import optimizers.measure.report as report

    class StandInCounter:
        def __init__(self, device: torch.device) -> None:
            self.readings = iter([1_000, 3_000])  # 2 J over the loop

        def read(self) -> int:
            return next(self.readings)

        def close(self) -> None:
            pass

    monkeypatch.setattr(report, "EnergyCounter", StandInCounter)
    monkeypatch.setattr(report, "MIN_ENERGY_LOOP_S", 0.05)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    energy = report._energy(nn.Identity(), torch.zeros(4, 2), torch.device("cuda", 0), budget_s=0.05)
    samples = int(energy["energy_note"].split(" over ")[1].split()[0])
    assert samples % 4 == 0 and energy["energy_j_per_1000"] == energy_j_per_1000(1_000, 3_000, samples)
    assert "in batches of 4" in energy["energy_note"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where NVML cannot be used")
def test_energy_counter_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="NVML's energy counter is not available"):
        EnergyCounter(torch.device("cuda", 0))


def test_peak_memory_on_the_cpu_reads_rss():
    with peak_memory(torch.device("cpu")) as memory:
        block = torch.ones(4 * 1024 * 1024)  # 16 MiB, touched
        block += 1
        del block
    assert memory.mb >= 8 and "RSS" in memory.note


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_measure_on_a_gpu_reports_its_name_memory_and_energy():
    device = torch.device("cuda", 0)
    model = nn.Sequential(nn.Linear(512, 4096), nn.ReLU(), nn.Linear(4096, 10)).eval().to(device)
    report = measure_model(model, torch.randn(1, 512, device=device), __file__, time_budget_s=6)
    assert report["device"] == torch.cuda.get_device_name(device)
    assert report["peak_memory_mb"] > 0 and "CUDA" in report["memory_note"]
    assert report["macs"] == 512 * 4096 + 4096 * 10
    # NVML's counter may be missing (MIG slices): then the note says why instead.
    assert report["energy_j_per_1000"] is None or report["energy_j_per_1000"] > 0, report["energy_note"]


def test_mean_cosine_judges_each_sample_as_one_vector():
    reference = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]])
    turned = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]])  # orthogonal; same direction
    assert output_error(turned, reference)["mean_cosine"] == pytest.approx(0.5)
    assert output_error(reference, reference)["mean_cosine"] == pytest.approx(1.0)
