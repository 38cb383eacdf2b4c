"""Unstructured pruning of a small MLP trained on digits: exactly as sparse as asked, zeros permanent,
accuracy kept by fine-tuning, and a compressed sparse state dict under 0.35x the dense one."""
import dataclasses

import pytest
import torch

from optimizers.configs.finetune import TrainSettings
from optimizers.configs.prune import PruneConfig
from optimizers.errors import Cancelled, RecipeError
from optimizers.formats.sparse_state_dict import load_sparse_state_dict
from optimizers.recipes.prune.layers import prunable
from optimizers.recipes.prune.recipe import SPARSE_FILE, prune, prune_applies
from optimizers.reporters import ListReporter, NullReporter
from optimizers.training.loop import evaluate, fit
from optimizers.zoo.models import build_model

INPUT = (1, 64)
CONFIG = PruneConfig(target_sparsity=0.8, agp_steps=3, epochs=2)


@pytest.fixture(scope="module")
def splits(digits):
    return digits


@pytest.fixture(scope="module")
def trained_mlp(splits):
    torch.manual_seed(0)
    model = build_model("mlp", {"hidden": [128, 64], "dropout": 0.0})
    fit(model, splits, INPUT, TrainSettings(epochs=4, learning_rate=1e-2))
    return model


@pytest.fixture(scope="module")
def pruned(trained_mlp, splits):
    report = ListReporter()
    return prune(trained_mlp, splits, CONFIG, report, example=torch.zeros(INPUT)), report


def _zeros_and_total(model) -> tuple[int, int]:
    weights = prunable(model, ignore_classifier=True)
    return sum(int((w == 0).sum()) for w in weights.values()), sum(w.numel() for w in weights.values())


def test_exactly_the_target_share_of_weights_is_zero_and_the_classifier_stays_dense(pruned):
    result, _ = pruned
    zeros, total = _zeros_and_total(result.model)
    assert zeros == round(0.8 * total)
    assert int((result.model.layers[-1].weight == 0).sum()) == 0
    assert result.extras["sparsity"] == pytest.approx(0.8, abs=1e-4)


def test_the_zeros_are_permanent_and_the_architecture_unchanged(pruned, trained_mlp):
    result, _ = pruned
    assert list(result.model.state_dict()) == list(trained_mlp.state_dict())  # no weight_orig / weight_mask
    assert not any(hook for module in result.model.modules() for hook in module._forward_pre_hooks.values())
    assert _zeros_and_total(trained_mlp)[0] == 0  # the input model was not touched


def test_fine_tuning_keeps_the_accuracy_and_is_charted(pruned, trained_mlp, splits):
    result, report = pruned
    before = evaluate(trained_mlp, splits.val_x, splits.val_y, INPUT)[1]
    after = evaluate(result.model, splits.val_x, splits.val_y, INPUT)[1]
    assert after >= before - 0.03
    sparsity = [event for event in report.events if event["kind"] == "metric" and event["name"] == "prune/sparsity"]
    assert [round(event["value"], 3) for event in sparsity] == [0.563, 0.77, 0.8]
    losses = [event["step"] for event in report.events if event.get("name") == "fine-tune/train_loss"]
    assert losses == sorted(losses) and len(set(losses)) == len(losses)  # one running x axis over all steps


def test_the_compressed_sparse_state_dict_is_small_and_exact(pruned, tmp_path):
    result, _ = pruned
    figures = result.extras["sparse_state_dict"]
    assert figures["file"] == SPARSE_FILE and figures["ratio"] <= 0.35
    path = tmp_path / SPARSE_FILE
    path.write_bytes(result.extra_files[SPARSE_FILE])
    restored = load_sparse_state_dict(path)
    assert all(torch.equal(restored[name], tensor) for name, tensor in result.model.state_dict().items())


def test_a_torch_export_model_is_pruned_as_a_graph(trained_mlp, splits):
    exported = torch.export.export(trained_mlp, (torch.zeros(2, 64),),
                                   dynamic_shapes=({0: torch.export.Dim("batch")},)).module()
    config = dataclasses.replace(CONFIG, agp_steps=1, epochs=1)
    result = prune(exported, splits, config, NullReporter(), example=torch.zeros(INPUT))
    zeros, total = _zeros_and_total(result.model)
    assert isinstance(result.model, torch.fx.GraphModule) and zeros == round(0.8 * total)
    assert result.extras["sparse_state_dict"]["ratio"] <= 0.35


def test_torchscript_is_refused_with_the_reason(trained_mlp, splits):
    scripted = torch.jit.script(trained_mlp)
    applicable, reason = prune_applies(scripted)
    assert not applicable and "TorchScript model is frozen" in reason
    with pytest.raises(RecipeError, match="cannot be fine-tuned"):
        prune(scripted, splits, CONFIG, NullReporter(), example=torch.zeros(INPUT))


def test_a_dataset_with_labels_is_required(trained_mlp, splits):
    with pytest.raises(RecipeError, match="needs a dataset with labels"):
        prune(trained_mlp, None, CONFIG, NullReporter(), example=torch.zeros(INPUT))
    unlabelled = dataclasses.replace(splits, train_y=None, val_y=None)
    with pytest.raises(RecipeError, match="needs a dataset with labels"):
        prune(trained_mlp, unlabelled, CONFIG, NullReporter(), example=torch.zeros(INPUT))


def test_a_cancelled_job_stops_between_steps(trained_mlp, splits):
    report = NullReporter()
    report.cancel_requested = True
    with pytest.raises(Cancelled):
        prune(trained_mlp, splits, CONFIG, report, example=torch.zeros(INPUT))


def test_a_retried_job_resumes_from_its_checkpoints_and_ends_the_same(trained_mlp, splits, tmp_path):
    config = dataclasses.replace(CONFIG, agp_steps=2, epochs=1)
    first = prune(trained_mlp, splits, config, NullReporter(), example=torch.zeros(INPUT), checkpoint_dir=str(tmp_path))
    report = ListReporter()
    second = prune(trained_mlp, splits, config, report, example=torch.zeros(INPUT), checkpoint_dir=str(tmp_path))
    resumed = [event for event in report.events if event["kind"] == "log" and "resuming" in event["message"]]
    assert len(resumed) == 2  # each pruning step's fine-tuning found its finished run
    expected = first.model.state_dict()
    assert all(torch.equal(expected[name], tensor) for name, tensor in second.model.state_dict().items())


def test_without_an_example_the_dataset_samples_are_used_as_they_are(trained_mlp, splits):
    config = dataclasses.replace(CONFIG, agp_steps=1, epochs=1)
    result = prune(trained_mlp, splits, config, NullReporter())  # digits are [1, 8, 8]; the MLP flattens them
    assert result.extras["sparsity"] == pytest.approx(0.8, abs=1e-4)
