"""bench/gpu_check.py (issue 15), run as a GPU session runs it: a fresh process, a JSON report, a table.

On a CPU the smoke run must measure what a CPU can run and say "skipped: no CUDA" for every CUDA-only row; on a GPU
(the `gpu` marker) its quick run must end without a failed row.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.paths import REPO_ROOT

CUDA_ONLY = ["quantize weight_only_int8_cuda", "quantize weight_only_int4_cuda", "quantize fp8_cuda",
             "target: fp8 speedup measured", "prune 2:4 (MLP)", "DDP: every GPU a rank",
             "target: best plan >= 3x fp32 eager throughput (ResNet-18 class, batch 256)",
             "target: best plan energy per image <= 0.55x fp32 eager",
             "target: NVML telemetry during the ResNet plan search"]
MEASURED = ["quantize fp32 (baseline)", "quantize fp16", "quantize bf16", "distill (short run)"]


def gpu_check(tmp_path, device: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", device, "--quick", "--out", str(out)],
                          cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True,
                          text=True, timeout=280)
    assert out.exists(), done.stdout + done.stderr
    return done, json.loads(out.read_text())


def test_the_cpu_smoke_run_measures_what_a_cpu_runs_and_skips_each_cuda_row(tmp_path):
    done, report = gpu_check(tmp_path, "cpu")

    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["check"]: row for row in report["rows"]}
    assert [rows[name]["status"] for name in CUDA_ONLY] == ["skipped: no CUDA"] * len(CUDA_ONLY)
    assert rows["prune 2:4 (BERT Linear layers)"]["status"].startswith("skipped: ")  # no CUDA, or no transformers
    assert rows["prune 2:4 (MLP)"]["figures"]["eligible_layers"] == 2  # the model was built before the skip
    for name in MEASURED:
        figures = rows[name]["figures"]
        assert rows[name]["status"] == "ok" and figures["p50_ms"] > 0 and figures["throughput_per_s"] > 0, rows[name]
        assert figures["energy_j_per_1000"] is None and figures["device"] == "cpu"
    assert rows["quantize fp16"]["figures"]["output_error"]["max_abs"] > 0  # really half precision, not a copy
    assert rows["parallelize: CPU plan search (ResNet)"]["figures"]["throughput_per_s"] > 0
    assert all(rows[name]["met"] is None for name in rows if name.startswith("target: "))
    table = done.stdout[done.stdout.index("\ncheck "):]
    assert all(name[:52] in table for name in rows), table


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_the_quick_run_has_no_failed_row(tmp_path):
    done, report = gpu_check(tmp_path, "cuda")

    rows = {row["check"]: row for row in report["rows"]}
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows["quantize fp16"]["figures"]["device"] != "cpu" and rows["DDP: every GPU a rank"]["status"] == "ok"
    assert rows["parallelize: GPU plan search (ResNet)"]["figures"]["throughput_per_s"] > 0
