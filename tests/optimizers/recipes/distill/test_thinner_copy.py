"""A thinner or shallower copy of a built-in teacher: its strongest units, its every other block."""
import pytest
import torch

from optimizers.errors import RecipeError
from optimizers.recipes.distill.thinner import NEEDS_ARCHITECTURE, thinner_applies, thinner_copy
from optimizers.zoo.models import build_model

ARCHITECTURES = {
    "mlp": ({"hidden": [32, 16]}, (4, 64)),
    "small_cnn": ({"channels": [8, 16]}, (4, 1, 8, 8)),
    "resnet": ({"layers": [2, 3, 1, 2], "width": 0.125, "image_size": 16}, (2, 3, 16, 16)),
    "transformer": ({"layers": 4, "d_model": 16, "heads": 2, "vocab_size": 50, "max_len": 8}, (2, 8)),
}


def teacher_of(name: str) -> tuple[torch.nn.Module, dict, torch.Tensor]:
    config, shape = ARCHITECTURES[name]
    torch.manual_seed(0)
    teacher = build_model(name, config)
    for module in teacher.modules():  # batch norms with statistics of their own, so a wrong slice shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    inputs = torch.randint(0, 50, shape) if name == "transformer" else torch.randn(shape)
    return teacher, {"name": name, "config": config}, inputs


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_at_full_width_and_depth_the_copy_is_the_teacher(name):
    teacher, architecture, inputs = teacher_of(name)
    student, student_architecture, _ = thinner_copy(teacher, architecture, 1.0, "same")
    with torch.no_grad():
        torch.testing.assert_close(student(inputs), teacher(inputs))
    assert student_architecture["name"] == name


def test_a_narrower_mlp_keeps_its_strongest_neurons_and_computes_through_them():
    teacher, architecture, inputs = teacher_of("mlp")
    student, student_architecture, _ = thinner_copy(teacher, architecture, 0.5, "half")
    assert student_architecture["config"]["hidden"] == [16, 8]
    first, second = teacher.layers[1].weight, teacher.layers[4].weight
    kept_first, kept_second = strongest_rows(first, 16), strongest_rows(second, 8)
    torch.testing.assert_close(student.layers[1].weight, first[kept_first])
    # The next layer keeps its own strongest neurons and reads exactly the kept neurons of the one before.
    torch.testing.assert_close(student.layers[4].weight, second[kept_second][:, kept_first])
    torch.testing.assert_close(student.layers[7].weight, teacher.layers[7].weight[:, kept_second])
    assert student(inputs).shape == teacher(inputs).shape


def strongest_rows(weight: torch.Tensor, keep: int) -> torch.Tensor:
    return weight.norm(dim=1).topk(keep).indices.sort().values


def test_a_narrower_small_cnn_slices_convolutions_norms_and_the_classifier_alike():
    teacher, architecture, inputs = teacher_of("small_cnn")
    student, student_architecture, notes = thinner_copy(teacher, architecture, 0.5, "half")
    assert student_architecture["config"]["channels"] == [4, 8]
    assert "keeps its stages" in notes[0]
    kept = teacher.features[0].weight.flatten(1).norm(dim=1).topk(4).indices.sort().values
    torch.testing.assert_close(student.features[1].running_mean, teacher.features[1].running_mean[kept])
    assert student(inputs).shape == (4, 10)


@pytest.mark.parametrize(("name", "blocks"), [("resnet", [1, 2, 1, 1]), ("transformer", 2)])
def test_half_depth_keeps_every_other_block_from_the_first(name, blocks):
    teacher, architecture, inputs = teacher_of(name)
    student, student_architecture, _ = thinner_copy(teacher, architecture, 1.0, "half")
    assert student_architecture["config"]["layers"] == blocks
    if name == "resnet":  # stage 2 had blocks 0, 1, 2: the copy holds 0 and 2
        torch.testing.assert_close(student.layer2[1].conv1.weight, teacher.layer2[2].conv1.weight)
    else:  # layers 0, 1, 2, 3: the copy holds 0 and 2
        torch.testing.assert_close(student.encoder.layers[1].linear1.weight, teacher.encoder.layers[2].linear1.weight)
    assert student(inputs).shape == teacher(inputs).shape


def test_only_a_built_in_teacher_with_its_settings_can_be_copied():
    teacher, architecture, inputs = teacher_of("mlp")
    scripted = torch.jit.trace(teacher, inputs)
    assert thinner_applies(scripted) == (False, NEEDS_ARCHITECTURE)
    assert thinner_applies(teacher)[0]
    with pytest.raises(RecipeError, match="built-in architecture"):
        thinner_copy(scripted, architecture, 0.5, "half")
    with pytest.raises(RecipeError, match="built-in architecture"):
        thinner_copy(teacher, None, 0.5, "half")
