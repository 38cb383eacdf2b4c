"""The model saved in the form the plan runs: channels-last weights, an ahead-of-time compiled package."""
import subprocess
import sys

import pytest
import torch
from torch import nn

from optimizers.configs.parallelize import ParallelizeConfig
from optimizers.recipes.parallelize.recipe import _cpu_ways, _plan_form
from optimizers.recipes.parallelize.saved_form import COMPILED_FILE, compiled_form
from optimizers.recipes.parallelize.search import Setting
from optimizers.recipes.parallelize.serving import serving_snippet
from optimizers.zoo.models import build_model

EXAMPLE = torch.zeros(1, 1, 8, 8)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return build_model("small_cnn", {"channels": [16, 32]}).eval()


def test_a_channels_last_plan_keeps_channels_last_weights(cnn):
    ways = _cpu_ways(cnn, EXAMPLE, ParallelizeConfig(device="cpu"))
    model, files, notes = _plan_form(cnn, ways, Setting("channels_last", 1, 32), EXAMPLE, CPU)
    weight = model.features[4].weight  # 16 input channels: the two layouts differ (with 1 they coincide)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert files == {} and "channels-last memory format" in notes[0]
    assert cnn.features[4].weight.is_contiguous()  # the upload itself is untouched
    assert _plan_form(cnn, ways, Setting("eager", 2, 32), EXAMPLE, CPU)[0] is cnn


def test_a_compiled_plan_saves_a_package_that_serves_any_batch(cnn, tmp_path):
    files, notes = compiled_form(cnn, EXAMPLE)
    assert "compiled ahead of time (AOTInductor)" in notes[0]
    (tmp_path / COMPILED_FILE).write_bytes(files[COMPILED_FILE])
    compiled = torch._inductor.aoti_load_package(str(tmp_path / COMPILED_FILE))
    for batch in (1, 3, 64):
        inputs = torch.rand(batch, 1, 8, 8)
        with torch.inference_mode():
            torch.testing.assert_close(compiled(inputs), cnn(inputs))
    # serve_plan.py takes the package when the plan is compiled (no model.pt beside it: it must not need one)
    (tmp_path / "serve_plan.py").write_text(serving_snippet(Setting("compiled", 1, 8), EXAMPLE))
    finished = subprocess.run([sys.executable, "serve_plan.py"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "served 17 samples in batches of 8" in finished.stdout


class DataDependent(nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x  # export cannot trace a branch on the data


def test_a_model_that_cannot_be_compiled_ahead_of_time_says_why():
    files, notes = compiled_form(DataDependent(), torch.ones(1, 4))
    assert files == {} and notes[0].startswith("the compiled form could not be saved ahead of time (")
    assert "serve_plan.py compiles the model with torch.compile when it loads it" in notes[0]
