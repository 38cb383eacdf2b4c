"""The pieces every prune method shares: which weights, the AGP schedule, exact global masks."""
import torch
from torch import nn

from optimizers.recipes.prune.layers import (
    agp_sparsity,
    apply_masks,
    classifier_name,
    global_magnitude_masks,
    prunable,
    sparsity,
    weight_layers,
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 32),
                         nn.ReLU(), nn.Linear(32, 10)).eval()


def test_the_agp_schedule_prunes_most_early_and_ends_on_the_target():
    levels = [agp_sparsity(step, 4, 0.8) for step in range(1, 5)]
    assert levels == sorted(levels) and levels[-1] == 0.8
    increments = [b - a for a, b in zip([0.0, *levels], levels, strict=False)]
    assert increments == sorted(increments, reverse=True)
    assert agp_sparsity(1, 1, 0.5) == 0.5


def test_eager_and_exported_models_list_the_same_weights_and_classifier():
    model = _net()
    exported = torch.export.export(model, (torch.randn(2, 1, 8, 8),)).module()
    for candidate in (model, exported):
        layers = weight_layers(candidate)
        assert [(layer.name, layer.kind) for layer in layers] == [("0.weight", "Conv"), ("4.weight", "Linear"),
                                                                  ("6.weight", "Linear")]
        assert classifier_name(layers) == "6.weight"
        assert list(prunable(candidate, ignore_classifier=True)) == ["0.weight", "4.weight"]


def test_global_masks_zero_exactly_the_asked_share_and_keep_earlier_zeros():
    weights = {name: parameter.detach().clone() for name, parameter in prunable(_net(), False).items()}
    total = sum(weight.numel() for weight in weights.values())
    first = global_magnitude_masks(weights, 0.5)
    assert sum(int((~mask).sum()) for mask in first.values()) == round(0.5 * total)
    apply_masks(weights, first)
    second = global_magnitude_masks(weights, 0.8, first)
    assert all(bool((~second[name])[~first[name]].all()) for name in weights)  # pruned stays pruned
    apply_masks(weights, second)
    assert sum(int((weight == 0).sum()) for weight in weights.values()) == round(0.8 * total)
    assert sparsity(weights) == round(0.8 * total) / total


def test_masks_keep_the_largest_magnitudes_across_layers():
    weights = {"a": torch.tensor([0.1, -5.0, 0.2, 3.0]), "b": torch.tensor([-0.05, 4.0])}
    masks = global_magnitude_masks(weights, 0.5)
    assert masks["a"].tolist() == [False, True, False, True] and masks["b"].tolist() == [False, True]
