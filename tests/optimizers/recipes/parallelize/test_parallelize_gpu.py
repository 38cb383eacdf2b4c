"""The plan search on a GPU: every way serves the same outputs, the plan is the measured best, its file runs."""
import subprocess
import sys

import pytest
import torch

from optimizers.configs.parallelize import ParallelizeConfig
from optimizers.recipes.parallelize.cuda_plans import CudaServer, prepared_module
from optimizers.recipes.parallelize.recipe import parallelize
from optimizers.reporters import ListReporter
from optimizers.zoo.models import build_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
EXAMPLE = torch.rand(1, 1, 8, 8)


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return build_model("small_cnn", {"channels": [16, 32]}).eval()


@pytest.mark.parametrize("variant", ["fp32", "fp32+graph", "fp32+streams", "fp32+channels_last+graph+streams"])
def test_every_way_serves_what_the_model_computes(cnn, variant):
    device = torch.device("cuda")
    batch = torch.rand(16, 1, 8, 8)
    server = CudaServer(prepared_module(cnn, variant, device, {}), variant, batch, device)
    with torch.inference_mode():
        expected = cnn(batch)
    for _ in range(3):  # the streamed way serves from the batch it copied during the previous call
        torch.testing.assert_close(server().cpu(), expected, rtol=1e-4, atol=1e-4)


def test_the_gpu_plan_is_the_measured_best_and_its_file_serves(cnn, tmp_path):
    config = ParallelizeConfig(device="cuda", batch_sizes=(1, 64, 256), repeats=10)
    result = parallelize(cnn, None, config, ListReporter(), example=EXAMPLE)
    found = result.extras["plan_search"]
    assert found["plan"] == max(found["points"], key=lambda point: point["throughput_per_s"])
    assert found["baseline"]["variant"] == "fp32" and found["baseline"]["batch"] == 1
    assert {"fp32", "fp16"} <= {point["variant"] for point in found["points"]}
    assert any("autocast: outputs differ from fp32 by at most" in note for note in result.notes)
    torch.jit.save(torch.jit.trace(cnn, EXAMPLE), str(tmp_path / "model.pt"))
    (tmp_path / "serve_plan.py").write_bytes(result.extra_files["serve_plan.py"])
    run = subprocess.run([sys.executable, "serve_plan.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "served" in run.stdout, run.stderr
