"""2:4 semi-structured pruning: the pattern, the measured decision, and a clear refusal where it cannot pay.

The decision logic runs everywhere; the timing itself needs an NVIDIA GPU (tests marked gpu).
"""
import pytest
import torch
from torch import nn

from optimizers.configs.prune import PruneConfig
from optimizers.data.splits import DataSplits
from optimizers.errors import RecipeError
from optimizers.recipes.prune import semi_structured as semi
from optimizers.recipes.prune.recipe import method_applicability, prune
from optimizers.recipes.prune.semi_structured import LayerTiming, choose_layers, eligible_linears, two_four_mask
from optimizers.reporters import NullReporter

CONFIG = PruneConfig(method="semi_structured_2_4", epochs=1)


def _wide_mlp(width: int = 128) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10)).eval()


def _random_splits(samples: int = 256) -> DataSplits:
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(samples, 64, generator=generator), torch.randint(0, 10, (samples,), generator=generator)
    return DataSplits(x[:192], y[:192], x[192:], y[192:], [str(label) for label in range(10)])


def test_the_mask_keeps_the_two_largest_of_every_four():
    weight = torch.tensor([[0.1, -3.0, 2.0, 0.0, 5.0, 4.0, -6.0, 1.0]])
    assert two_four_mask(weight).tolist() == [[False, True, True, False, True, False, True, False]]
    mask = two_four_mask(torch.randn(64, 128))
    assert bool((mask.reshape(-1, 4).sum(dim=1) == 2).all())


def test_only_kernel_friendly_shapes_are_candidates_and_the_classifier_is_left_out():
    model = _wide_mlp()
    assert list(eligible_linears(model, ignore_classifier=True)) == ["0", "2"]  # 64 in, 128 out; 128 in, 128 out
    odd = nn.Sequential(nn.Linear(60, 128), nn.Linear(128, 96))
    assert list(eligible_linears(odd, ignore_classifier=False)) == ["1"]


def test_layers_are_chosen_only_where_2_4_measured_faster():
    timings = {"fc1": LayerTiming(dense_ms=1.0, sparse_ms=0.6), "fc2": LayerTiming(dense_ms=1.0, sparse_ms=0.95)}
    chosen, refusal = choose_layers(timings, min_speedup=1.1)
    assert chosen == ["fc1"] and refusal is None


def test_when_nothing_is_faster_the_refusal_gives_the_numbers():
    timings = {"fc1": LayerTiming(dense_ms=0.0200, sparse_ms=0.0267)}
    chosen, refusal = choose_layers(timings, min_speedup=1.1)
    assert chosen == [] and "fc1: dense 0.0200 ms, 2:4 0.0267 ms (0.75x)" in refusal and "1.10x" in refusal
    assert "no layer could be timed" in choose_layers({}, 1.1)[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without CUDA")
def test_without_cuda_it_is_refused_with_a_clear_reason():
    answer = method_applicability(_wide_mlp())["semi_structured_2_4"]
    assert not answer["applicable"] and "needs an NVIDIA GPU" in answer["reason"]
    with pytest.raises(RecipeError, match="needs an NVIDIA GPU .* this worker has none"):
        prune(_wide_mlp(), _random_splits(), CONFIG, NullReporter(), example=torch.zeros(1, 64))


def test_a_refusal_from_the_timings_stops_the_job_before_any_pruning(monkeypatch):
    model = _wide_mlp()
    monkeypatch.setattr(semi, "cuda_refusal", lambda: None)
    slower = {name: LayerTiming(1.0, 1.3) for name in ("0", "2")}
    monkeypatch.setattr("optimizers.recipes.prune.two_four_timing.time_layers", lambda *args: (slower, {}))
    with pytest.raises(RecipeError, match=r"not at least 1\.10x faster .* 0: dense 1\.0000 ms, 2:4 1\.3000 ms"):
        prune(model, _random_splits(), CONFIG, NullReporter(), example=torch.zeros(1, 64))
    assert int((model[0].weight == 0).sum()) == 0


def test_chosen_layers_get_the_2_4_pattern_and_keep_it_through_fine_tuning(monkeypatch):
    monkeypatch.setattr(semi, "cuda_refusal", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "a test GPU")
    timings = {"0": LayerTiming(1.0, 0.6), "2": LayerTiming(1.0, 1.2)}
    monkeypatch.setattr("optimizers.recipes.prune.two_four_timing.time_layers", lambda *args: (timings, {}))
    result = prune(_wide_mlp(), _random_splits(), CONFIG, NullReporter(), example=torch.zeros(1, 64))
    kept = result.model[0].weight.reshape(-1, 4) != 0
    assert bool((kept.sum(dim=1) <= 2).all()) and int((result.model[2].weight == 0).sum()) == 0
    assert result.extras["layer_timings"]["0"] == {"dense_ms": 1.0, "sparse_ms": 0.6, "speedup": 1.667, "used": True}
    assert result.extras["sparse_state_dict"]["ratio"] < 1.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("width", [128, 4096])
def test_on_a_gpu_the_decision_follows_the_measurement(width):
    try:
        result = prune(_wide_mlp(width), _random_splits(), CONFIG, NullReporter(), example=torch.zeros(1, 64))
    except RecipeError as refusal:  # slower here: the refusal must carry the measured numbers
        assert "faster than dense" in str(refusal) and " ms, 2:4 " in str(refusal)
        return
    timings = result.extras["layer_timings"]
    used = [name for name, timing in timings.items() if timing["used"]]
    assert used and all(timings[name]["speedup"] >= CONFIG.min_speedup for name in used)
    for name in used:
        kept = result.model.get_submodule(name).weight.reshape(-1, 4) != 0
        assert bool((kept.sum(dim=1) <= 2).all())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_layers_are_timed_on_their_real_input_rows():
    from optimizers.recipes.prune.two_four_timing import time_layers

    model = _wide_mlp(1024)
    timings, skipped = time_layers(model, eligible_linears(model, True), torch.zeros(1, 64), 32)
    assert set(timings) | set(skipped) == {"0", "2"}
    assert all(timing.dense_ms > 0 and timing.sparse_ms > 0 for timing in timings.values())
