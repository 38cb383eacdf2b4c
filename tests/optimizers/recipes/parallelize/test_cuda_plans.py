"""The GPU plan search's stages with made-up timings, its refusals, and the serving file it writes, on the CPU."""
import ast

import pytest
import torch

from optimizers.errors import RecipeError
from optimizers.recipes.parallelize.cuda_plans import CudaOptions, best_variant, staged_variants
from optimizers.recipes.parallelize.recipe import _search_device
from optimizers.recipes.parallelize.search import Setting, Timing, search
from optimizers.recipes.parallelize.serving import cuda_serving_snippet

ALL = CudaOptions(half_precision=True, bf16=True, channels_last=True, compile=True, graphs=True, streams=True)
# ms per batch of 64: fp16 beats bf16 and fp32; channels-last helps; a CUDA graph beats compile; streams help a bit
MS = {"fp32": 12.0, "fp16": 6.0, "bf16": 6.5, "fp16+channels_last": 5.4, "fp16+channels_last+compiled": 3.6,
      "fp16+channels_last+graph": 3.0, "fp16+channels_last+graph+streams": 2.5}


def timed(asked, table=MS):
    def measure(setting: Setting, best: float) -> Timing:
        asked.append(setting.variant)
        ms = table[setting.variant] * setting.batch / 64
        return Timing(ms, ms * 1.1, 20)
    return measure


def _staged(options, budget_ms=0.0):
    return lambda points: staged_variants(points, budget_ms, options)


def test_each_stage_builds_on_the_fastest_way_so_far():
    asked = []
    outcome = search(_staged(ALL), [1], [64], timed(asked))
    assert asked == ["fp32", "fp16", "bf16", "fp16+channels_last", "fp16+channels_last+compiled",
                     "fp16+channels_last+graph", "fp16+channels_last+graph+streams"]
    assert outcome.chosen.setting.variant == "fp16+channels_last+graph+streams"
    assert outcome.chosen == max(outcome.points, key=lambda point: point.throughput)


def test_stages_that_do_not_apply_are_not_tried():
    asked = []
    options = CudaOptions(half_precision=False, bf16=False, channels_last=False, compile=False, graphs=True,
                          streams=False)
    search(_staged(options), [1], [64], timed(asked, {**MS, "fp32+graph": 8.0}))
    assert asked == ["fp32", "fp32+graph"]


def test_the_budget_decides_which_way_the_next_stage_builds_on():
    points = [search(["fp32", "fp16"], [1], [64], timed([])).points[index] for index in (0, 1)]
    assert best_variant(points, 0.0) == "fp16"
    assert best_variant(points, 5.0) == "fp32"  # nothing within 5 ms: the stages build on fp32
    assert best_variant(points, 7.0) == "fp16"


def test_cuda_is_refused_with_a_reason_where_there_is_none(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RecipeError, match="this worker has no GPU"):
        _search_device("cuda")
    assert _search_device("auto") == torch.device("cpu") and _search_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("variant", ["fp32", "fp16+channels_last+graph+streams", "bf16+compiled+streams"])
def test_the_gpu_serving_file_is_valid_python_with_the_plan_in_it(variant):
    text = cuda_serving_snippet(Setting(variant, 1, 256), torch.zeros(1, 3, 32, 32))
    constants = {}
    for node in ast.parse(text).body:  # the module's top-level flags, as Python reads them
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple):
            for target, value in zip(node.targets[0].elts, node.value.elts, strict=True):
                if target.id in ("GRAPH", "STREAMS", "COMPILED", "CHANNELS_LAST"):
                    constants[target.id] = ast.literal_eval(value)
    assert constants == {"CHANNELS_LAST": "channels_last" in variant, "COMPILED": "compiled" in variant,
                         "GRAPH": "graph" in variant, "STREAMS": "streams" in variant}
    assert "BATCH, PRECISION = 256, " + {"fp32": "None", "fp16": "torch.float16", "bf16": "torch.bfloat16"}[
        variant.split("+")[0]] in text
