"""The shared report inside the two jobs: inspect's figures and run's before/after/ratios/report.json."""

import json

import numpy
import pytest
import torch
from torch import nn

from optimizers.job_runner import inspect_model, run_recipe
from optimizers.job_spec import JobSpec
from optimizers.measure.report import measure_model, reference_outputs
from optimizers.reporters import NullReporter
from tests.optimizers.measure.test_report import REPORT_KEYS

WEB_INSPECT_KEYS = {"format", "params", "size_bytes", "input_shape", "input_dtype", "output_shape", "output_dtype",
                    "output_note", "latency_ms_p50", "latency_ms_p95", "threads", "recipes"}
RATIO_KEYS = {"size", "params", "nonzero_params", "macs", "latency_p50_batch_1", "latency_p50_batch_32",
              "throughput", "peak_memory", "energy", "perplexity", "time_to_first_token", "tokens_per_s_batch_1"}


def job(**values) -> JobSpec:
    return JobSpec.from_dict({"action": "run", "input_shape": [1, 256], "recipe": "quantize", **values})


def test_inspect_keeps_the_page_keys_and_adds_the_full_report(mlp_pt):
    info = inspect_model(job(action="inspect", model_path=str(mlp_pt)), NullReporter())
    assert WEB_INSPECT_KEYS | {"report"} == set(info)
    assert set(info["report"]) == REPORT_KEYS
    assert info["params"] == info["report"]["params"] == 256 * 512 + 512 + 512 * 10 + 10
    assert info["report"]["macs"] == 256 * 512 + 512 * 10
    assert info["latency_ms_p50"] == info["report"]["latency_ms"]["batch_1"]["p50"]
    json.dumps(info, allow_nan=False)


def test_run_writes_before_after_ratios_and_formats(mlp_pt, tmp_path):
    result = run_recipe(job(model_path=str(mlp_pt), out_dir=str(tmp_path)), NullReporter())
    written = result["formats"]["written"]
    assert written["torchscript"] == "model.pt"
    assert result["artifacts"] == [*written.values(), "report.json"]
    assert all((tmp_path / name).is_file() for name in result["artifacts"])
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == {key: value for key, value in result.items() if key != "artifacts"}
    before, after = result["before"], result["after"]
    assert set(before) == set(after) == REPORT_KEYS
    assert after["size_bytes"] == (tmp_path / "model.pt").stat().st_size
    # Dynamic int8 keeps every multiply-accumulate and every weight; it only stores them in a byte.
    assert after["macs"] == before["macs"] and after["params"] == before["params"]
    assert set(result["ratios"]) == RATIO_KEYS and result["ratios"]["size"] < 0.5
    assert before["output_error"]["identical"] is True and after["agreement_top1"] == 1.0
    assert 0 < result["max_abs_diff"] == after["output_error"]["max_abs"] <= 0.05 * result["reference_max_abs"]
    assert {"recipe", "config", "backend", "format", "notes", "threads", "device"} <= set(result)


class DigitsLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def digits_job(tmp_path_factory):
    """A linear classifier fitted to sklearn's digits, exported, and the digits as a prepared dataset.npz."""
    pytest.importorskip("optimizers.data.splits", reason="the DATA helper's splits are not there yet")
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("digits")
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
    y = torch.tensor(digits.target, dtype=torch.int64)
    numpy.savez(folder / "dataset.npz", x=x.numpy(), y=y.numpy())
    torch.manual_seed(0)
    model = DigitsLinear()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    example = torch.zeros(1, 1, 8, 8)
    torch.export.save(torch.export.export(model.eval(), (example,)), str(folder / "digits.pt2"))
    return folder


def test_measure_with_splits_reports_accuracy_and_fidelity_on_the_validation_split(digits_job):
    from optimizers.data.splits import load_splits

    splits = load_splits(digits_job / "dataset.npz")
    model = torch.export.load(str(digits_job / "digits.pt2")).module()
    example = torch.zeros(1, 1, 8, 8)
    reference = reference_outputs(model, example, splits)
    report = measure_model(model, example, digits_job / "digits.pt2", splits=splits, reference=reference,
                           time_budget_s=10)
    assert report["evaluated_on"] == "val split" and report["accuracy"] > 0.85
    assert report["output_error"]["samples"] == len(splits.val_x) == len(reference)
    assert report["agreement_top1"] == 1.0 and report["quality_note"] is None


def test_a_dataset_that_does_not_fit_the_model_falls_back_to_the_example(digits_job):
    from optimizers.data.splits import load_splits

    wide = nn.Linear(256, 10).eval()  # digits flatten to 64 features, not 256
    report = measure_model(wide, torch.zeros(1, 256), __file__, splits=load_splits(digits_job / "dataset.npz"),
                           time_budget_s=10)
    assert report["evaluated_on"] == "example" and report["accuracy"] is None
    assert report["quality_note"].startswith("the dataset does not fit the model's input")


@pytest.mark.skipif("dataset_path" not in JobSpec.__dataclass_fields__, reason="JobSpec.dataset_path (FORMATS)")
def test_run_with_a_dataset_reports_accuracy_on_the_validation_split(digits_job, tmp_path):
    spec = job(model_path=str(digits_job / "digits.pt2"), input_shape=[1, 1, 8, 8], out_dir=str(tmp_path),
               dataset_path=str(digits_job / "dataset.npz"))
    result = run_recipe(spec, NullReporter())
    before, after = result["before"], result["after"]
    assert before["evaluated_on"] == after["evaluated_on"] == "val split"
    assert before["accuracy"] > 0.85 and abs(after["accuracy"] - before["accuracy"]) < 0.05
    assert after["agreement_top1"] > 0.95 and after["output_error"]["samples"] > 300
    assert after["output_error"]["sqnr_db"] > 20


def test_inspect_measures_an_onnx_upload(tmp_path):
    from tests.optimizers.measure.test_report import MLP64_MACS, MLP64_PARAMS, mlp64
    from tests.optimizers.measure.test_report_onnx import export_onnx

    path = export_onnx(mlp64(), torch.randn(1, 64), tmp_path / "upload.bin")  # uploads get server-made names
    info = inspect_model(job(action="inspect", model_path=str(path), input_shape=[1, 64]), NullReporter())
    assert info["format"] == "onnx" and info["output_shape"] == [1, 10]
    assert (info["params"], info["report"]["macs"]) == (MLP64_PARAMS, MLP64_MACS)
    assert info["report"]["latency_ms"]["batch_32"]["p50"] > 0  # exported with a dynamic batch
