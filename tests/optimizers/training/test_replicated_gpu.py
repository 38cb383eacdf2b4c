"""Data-parallel fine-tuning on GPUs: NCCL ranks, spawned (CUDA cannot be forked), one per device."""
import functools

import pytest
import torch

from optimizers.configs.finetune import TrainSettings
from optimizers.reporters import ListReporter
from optimizers.training.distributed import choose_ranks, run_ranks
from optimizers.training.loop import fit, train
from optimizers.training.replicated import _fit_in_rank
from optimizers.zoo.models import build_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
SHAPE = (1, 1, 8, 8)
OPTIONS = {"checkpoint_dir": None, "stage": "fine-tune", "prefix": "fine-tune", "loss_fn": None, "after_step": None,
           "step_offset": 0, "evaluate_fn": None, "score_name": "accuracy"}


def cuda_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("small_cnn", {}).to("cuda")


def test_every_gpu_is_a_rank():
    assert choose_ranks(0, torch.device("cuda")) == (torch.cuda.device_count(), "nccl")


def test_one_nccl_rank_trains_a_cuda_model(digits, tmp_path):
    work = functools.partial(_fit_in_rank, train, cuda_cnn(), digits, SHAPE, TrainSettings(epochs=2), OPTIONS)
    outcome = run_ranks(1, "nccl", work, ListReporter(), str(tmp_path))
    assert outcome.distributed == {"backend": "nccl", "ranks": 1, "replica_checks": outcome.steps}
    assert outcome.best_val_accuracy > 0.8


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_gpus_train_in_step(digits):
    model = cuda_cnn()
    outcome = fit(model, digits, SHAPE, TrainSettings(epochs=2, ranks=2))
    assert outcome.distributed["backend"] == "nccl" and outcome.distributed["replica_checks"] == outcome.steps
    assert [entry["ranks"] for entry in outcome.distributed["scaling"]] == [1, 2]
    assert next(model.parameters()).is_cuda and outcome.best_val_accuracy > 0.8


def test_cpu_ranks_train_after_a_backward_on_the_gpu(digits):
    """A backward on the GPU starts autograd's device threads, after which torch refuses backward in forked children:
    CPU ranks (a CPU job on a GPU machine) must then be spawned, and train."""
    cuda_cnn()(torch.zeros(2, 1, 8, 8, device="cuda")).sum().backward()
    outcome = fit(build_model("mlp", {}), digits, (1, 64), TrainSettings(epochs=1, ranks=2), measure_ranks=False)
    assert outcome.distributed["backend"] == "gloo" and outcome.distributed["replica_checks"] == outcome.steps
