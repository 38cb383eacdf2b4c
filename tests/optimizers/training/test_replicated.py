"""Data-parallel fine-tuning on 2 gloo ranks: replicas in step, the result kept, failures and cancels end cleanly."""
import functools
import hashlib
import multiprocessing
import os
import signal
import sys
import threading
import time

import psutil
import pytest
import torch
from torch import nn

from optimizers.configs.finetune import TrainSettings
from optimizers.errors import Cancelled, RecipeError
from optimizers.reporters import ListReporter
from optimizers.training import forking
from optimizers.training.distributed import available_ranks, choose_ranks, run_ranks
from optimizers.training.loop import evaluate, fit, train
from optimizers.training.replicated import _fit_in_rank
from optimizers.zoo.models import build_model

MLP_SHAPE = (1, 64)


def _rank_name() -> str:
    return multiprocessing.current_process().name


def _record_weights(folder, model, step):
    """after_step in every rank: a digest of this replica's weights, one line per step, in a file of its own."""
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
    with open(os.path.join(folder, f"{_rank_name()}.txt"), "a") as file:
        file.write(f"{step} {digest}\n")


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.fixture
def no_rank_left():
    """Fails the test when it leaves a process behind: the session's servers, started before, are not counted, and
    neither is multiprocessing's resource tracker (one per parent, started by the first spawn, kept for later ones)."""
    before = _children()

    def check():
        left = [psutil.Process(pid) for pid in _children() - before]
        return [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                and "resource_tracker" not in " ".join(p.cmdline())]

    return check


def test_two_ranks_stay_identical_after_every_step_and_keep_the_best_epoch(digits, tmp_path, no_rank_left):
    torch.manual_seed(0)
    model = build_model("mlp", {})
    report = ListReporter()
    settings = TrainSettings(epochs=2, batch_size=64, ranks=2)
    outcome = fit(model, digits, MLP_SHAPE, settings, report,
                  after_step=functools.partial(_record_weights, tmp_path, model), measure_ranks=False)

    # Our own digests of each replica's weights, written by the ranks themselves: the same at every step.
    files = sorted(tmp_path.glob("slimforge-rank-*.txt"))
    assert [file.name for file in files] == ["slimforge-rank-0.txt", "slimforge-rank-1.txt"]
    first, second = (file.read_text().splitlines() for file in files)
    steps = 2 * (len(digits.train_x) // 64 + (len(digits.train_x) % 64 >= 4))
    assert len(first) == steps and first == second
    assert outcome.distributed["replica_checks"] == steps and outcome.distributed["backend"] == "gloo"

    # The job's model now holds the trained weights of the best epoch, in inference mode.
    assert not model.training
    assert evaluate(model, digits.val_x, digits.val_y, MLP_SHAPE)[1] == pytest.approx(outcome.best_val_accuracy)
    assert outcome.best_val_accuracy > 0.7 and outcome.steps == steps
    assert outcome.distributed["scaling"] is None  # not asked for
    assert not no_rank_left()


def test_the_scaling_is_measured_at_one_and_two_ranks(digits, no_rank_left):
    report = ListReporter()
    outcome = fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=1, ranks=2), report)
    scaling = outcome.distributed["scaling"]
    assert [entry["ranks"] for entry in scaling] == [1, 2] and scaling[0]["efficiency"] == 1.0
    assert scaling[1]["efficiency"] == pytest.approx(scaling[1]["samples_per_s"] / (2 * scaling[0]["samples_per_s"]))
    logs = [event["message"] for event in report.events if event["kind"] == "log"]
    assert any("data-parallel scaling over gloo" in line for line in logs)
    assert {"fine-tune/train_loss", "fine-tune/val_accuracy"} <= {e["name"] for e in report.events
                                                                   if e["kind"] == "metric"}
    assert not no_rank_left()


def test_two_ranks_learn_as_one_process_does(digits):
    """The same global batch, shared: without dropout the curves match one process's to float rounding."""
    results = []
    for ranks in (1, 2):
        torch.manual_seed(0)
        outcome = fit(build_model("mlp", {"dropout": 0}), digits, MLP_SHAPE, TrainSettings(epochs=2, ranks=ranks),
                      measure_ranks=False)
        results.append([entry["val_loss"] for entry in outcome.history])
    assert results[1] == pytest.approx(results[0], rel=1e-3)


def _die_in_rank_one(step):
    if _rank_name() == "slimforge-rank-1" and step == 3:
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_rank_fails_the_training_and_leaves_no_process(digits, no_rank_left):
    with pytest.raises(RecipeError, match=r"training replica 1 of 2 was killed by SIGKILL.*other replicas were "
                                          r"stopped"):
        fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=3, ranks=2), after_step=_die_in_rank_one,
            measure_ranks=False)
    assert not no_rank_left()


def _refuse_in_rank_one(model, inputs, labels):
    if _rank_name() == "slimforge-rank-1":
        raise RecipeError("rank one's loss refused")
    return nn.functional.cross_entropy(model(inputs), labels)


def test_a_rank_that_raises_passes_its_message_on(digits, no_rank_left):
    with pytest.raises(RecipeError, match="rank one's loss refused"):
        fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=1, ranks=2), loss_fn=_refuse_in_rank_one,
            measure_ranks=False)
    assert not no_rank_left()


class _CancelAfterEpochOne(ListReporter):
    def cancelled(self) -> bool:
        return any(event["kind"] == "log" and "epoch 1 of" in event["message"] for event in self.events)


def test_cancelling_stops_every_rank(digits, no_rank_left):
    with pytest.raises(Cancelled):
        fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=50, ranks=2), _CancelAfterEpochOne(),
            measure_ranks=False)
    assert not no_rank_left()


def test_ranks_are_chosen_from_the_devices_the_worker_gives():
    cores = available_ranks(torch.device("cpu"))
    assert cores == len(os.sched_getaffinity(0))
    assert choose_ranks(0, torch.device("cpu")) == (cores, "gloo")
    assert choose_ranks(1, torch.device("cpu")) == (1, "gloo")
    with pytest.raises(RecipeError, match=f"ranks {cores + 1} asks for more replicas than the {cores} CPU cores"):
        choose_ranks(cores + 1, torch.device("cpu"))


def test_batches_too_small_to_share_are_refused(digits):
    with pytest.raises(RecipeError, match="a batch of 3 cannot be shared by 2 replicas"):
        fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=1, batch_size=3, ranks=2),
            measure_ranks=False)


def test_spawned_ranks_get_their_work_through_a_file(digits, tmp_path, no_rank_left):
    """The GPU path (spawn, as CUDA cannot be forked), here over gloo: model, data and settings arrive by torch.save."""
    torch.manual_seed(0)
    model = build_model("mlp", {})
    options = {"checkpoint_dir": None, "stage": "fine-tune", "prefix": "fine-tune", "loss_fn": None,
               "after_step": None, "step_offset": 0, "evaluate_fn": None, "score_name": "accuracy"}
    work = functools.partial(_fit_in_rank, train, model, digits, MLP_SHAPE, TrainSettings(epochs=1), options)
    report = ListReporter()
    outcome = run_ranks(2, "gloo", work, report, str(tmp_path), spawn=True)
    assert (tmp_path / "work.pt").is_file() and (tmp_path / "rank0-weights.pt").is_file()
    assert outcome.distributed == {"backend": "gloo", "ranks": 2, "replica_checks": outcome.steps}
    trained = torch.load(tmp_path / "rank0-weights.pt", weights_only=True)
    assert not torch.equal(trained["layers.1.weight"], model.state_dict()["layers.1.weight"])  # the job's is untouched
    assert any(event["kind"] == "metric" for event in report.events)
    assert not no_rank_left()


@pytest.mark.skipif(torch.backends.cuda.is_built(), reason="a CUDA build may start autograd's device threads")
def test_a_cpu_build_keeps_forking_ranks_after_a_backward():
    """Forked ranks inherit hooks that pickle cannot carry (an onnxruntime teacher): on a build without devices
    autograd starts no device threads, so a backward here leaves forking allowed."""
    build_model("mlp", {})(torch.zeros(2, 64)).sum().backward()
    assert forking.fork_keeps_autograd()


@pytest.fixture
def fork_refused(monkeypatch):
    """This process as one whose autograd has started device threads (a GPU machine after a backward), as far as the
    choice of how to start ranks goes: the answer fork_keeps_autograd remembers once it has seen a refusal."""
    monkeypatch.setattr(forking, "_refused", True)


_STATE = "as imported"  # a forked rank sees what the test set here; a spawned one imports this module afresh


def _record_state(folder, step):
    with open(os.path.join(folder, f"{_rank_name()}.txt"), "a") as file:
        file.write(f"{_STATE}\n")


def test_ranks_are_spawned_where_autograd_refuses_a_fork(digits, tmp_path, fork_refused, no_rank_left, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "_STATE", "set by the test")
    torch.manual_seed(0)
    outcome = fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=2, ranks=2),
                  after_step=functools.partial(_record_state, str(tmp_path)), measure_ranks=False)
    assert outcome.distributed["backend"] == "gloo" and outcome.distributed["replica_checks"] == outcome.steps
    assert outcome.best_val_accuracy > 0.7
    for rank in (0, 1):
        assert set((tmp_path / f"slimforge-rank-{rank}.txt").read_text().splitlines()) == {"as imported"}
    assert not no_rank_left()


def test_work_that_cannot_be_spawned_says_why_the_ranks_are_not_forked(digits, fork_refused, no_rank_left):
    unpicklable = threading.Lock()  # as an onnxruntime session is: pickle refuses it

    def loss(model, inputs, labels):
        with unpicklable:
            return nn.functional.cross_entropy(model(inputs), labels)

    with pytest.raises(RecipeError, match=r"cannot be handed to spawned replicas \(this process's autograd already "
                                          r"runs device threads, so its CPU ranks cannot be forked\).*use ranks 1"):
        fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=1, ranks=2), loss_fn=loss,
            measure_ranks=False)
    assert not no_rank_left()


def test_a_fork_probe_that_does_not_answer_is_killed_and_counts_as_refused(monkeypatch):
    monkeypatch.setattr(forking, "PROBE_TIMEOUT_S", 0.3)
    pid = os.fork()
    if pid == 0:  # a child stuck as one would be on a lock another thread held at the fork
        time.sleep(60)
        os._exit(0)
    started = time.monotonic()
    assert forking._exit_code(pid) is None
    assert time.monotonic() - started < 5
    assert not psutil.pid_exists(pid)  # killed and reaped
