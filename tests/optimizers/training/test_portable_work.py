"""What spawned replicas (GPU ranks, other hosts) receive through pickle: the recipes' hooks with the job's own model
in them (distill's teacher, the original a pruned model is matched to), whatever its format."""
import io

import pytest
import torch

from optimizers.formats import portable
from optimizers.formats.onnx_model import OnnxModel
from optimizers.recipes.distill.hint import FeatureCatcher, hinted_loss
from optimizers.recipes.distill.judge import teacher_judge
from optimizers.recipes.distill.loss import distillation_loss, output_matching_loss
from optimizers.recipes.prune.objective import cosine_judge, matching_loss
from optimizers.zoo.models import build_model
from tests.modelfiles import linear_model
from tests.optimizers.onnx_files import linear_onnx


def _travelled(work):
    """As a replica gets it: torch.save in the coordinator, torch.load in the replica's own process."""
    portable.picklable()
    buffer = io.BytesIO()
    torch.save(work, buffer)
    return torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)


@pytest.fixture
def torchscript_teacher():
    return torch.jit.script(linear_model(seed=3)).eval()


def test_hooks_with_a_torchscript_teacher_travel_and_judge_the_same(torchscript_teacher, digits):
    student, inputs, labels = build_model("mlp", {}), digits.train_x[:32].float(), digits.train_y[:32]
    example = torch.zeros(1, 64)
    hooks = {"soft": distillation_loss(torchscript_teacher, 2.0, 0.5),
             "cosine": output_matching_loss(torchscript_teacher, "cosine"),
             "matching": matching_loss(torchscript_teacher)}
    arrived = _travelled(hooks)
    for name, loss in hooks.items():
        assert torch.allclose(arrived[name](student, inputs, labels), loss(student, inputs, labels)), name
    assert isinstance(arrived["soft"].args[0], torch.jit.RecursiveScriptModule)
    judges = [teacher_judge(torchscript_teacher, digits, example, "soft_targets", hooks["soft"]),
              cosine_judge(torchscript_teacher, digits, example)]
    for arrived_judge, judge in zip(_travelled(judges), judges, strict=True):
        assert arrived_judge(student) == pytest.approx(judge(student))


def test_an_onnx_teacher_travels_as_its_bytes(tmp_path):
    teacher = OnnxModel(linear_onnx(tmp_path / "linear.onnx"))
    arrived = _travelled(teacher)
    assert arrived.onnx_path != teacher.onnx_path and arrived.input_names == teacher.input_names
    x = torch.randn(3, 4)
    assert torch.equal(arrived(x), teacher(x))


def test_a_hinted_loss_keeps_its_catcher_in_step_with_the_teacher_it_travelled_with():
    teacher = build_model("mlp", {}).eval()
    catcher = FeatureCatcher(teacher.layers[-1])
    loss = hinted_loss(distillation_loss(teacher, 2.0, 1.0), catcher, 0.5)
    arrived = _travelled(loss)
    base = arrived.args[0]
    # One object graph: the catcher that arrived watches the teacher that arrived, not a copy of it.
    assert arrived.args[1] in [hook.__self__ for hook in base.args[0].layers[-1]._forward_pre_hooks.values()]
