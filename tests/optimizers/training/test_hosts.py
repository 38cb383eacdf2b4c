"""A job on two hosts, as two separate processes on the loopback: the first runs the job and its replicas, the second
(optimizers.training.follower, its own process, as another machine's sandbox child would be) only its share of them.
The replicas of both hosts train as one DDP group; the job fails with the reason when the other host never comes or
cannot take its part, or dies without a word."""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch

from optimizers.configs.finetune import TrainSettings
from optimizers.errors import RecipeError
from optimizers.reporters import ListReporter
from optimizers.training import heartbeats
from optimizers.training import hosts as hosts_module
from optimizers.training.hosts import Cluster, joined, open_store
from optimizers.training.loop import fit
from optimizers.training.sealed import seal, unseal
from optimizers.zoo.models import build_model
from tests.optimizers.training.failing_model import FailsOnRankZero
from tests.optimizers.training.follower_process import SECRET, loopback_hosts, start_follower
from tests.paths import REPO_ROOT
from tests.processes import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.faults

MLP_SHAPE = (1, 64)
_hosts = loopback_hosts


def _follower(hosts, folder, cpus: str = "", **popen) -> subprocess.Popen:
    return start_follower(hosts, folder, cpus, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_two_hosts_train_as_one_group_and_the_second_leaves_when_the_job_ends(digits, tmp_path):
    port = free_port()
    follower = _follower(_hosts(1, port), tmp_path)
    torch.manual_seed(0)
    model = build_model("mlp", {})
    report = ListReporter()
    try:
        with joined(_hosts(0, port), report):
            outcome = fit(model, digits, MLP_SHAPE, TrainSettings(epochs=1, batch_size=64, ranks=1), report)
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    # Two rounds reached the second host: the scaling probe on both hosts, then the training.
    answer = json.loads(out)
    assert (answer["rounds"], answer["kind"]) == (2, "CPU cores") and answer["devices"] >= 1
    assert outcome.distributed["ranks"] == 2 and outcome.distributed["hosts"] == 2
    assert outcome.distributed["replica_checks"] == outcome.steps > 0  # both replicas identical after every step
    assert [entry.get("hosts", 1) for entry in outcome.distributed["scaling"]] == [1, 2]
    logs = [event["message"] for event in report.events if event["kind"] == "log"]
    assert any(message.startswith("all 2 hosts joined the job (host 2: ") for message in logs)
    assert any("2 data-parallel replicas, 1 on each of 2 hosts" in message for message in logs)
    assert outcome.best_val_accuracy > 0.5


DISTILLING_LEADER = """
import json, sys
from pathlib import Path
import torch
from optimizers.configs.finetune import TrainSettings
from optimizers.data.job import load_digits_dataset, write_dataset
from optimizers.data.splits import load_splits
from optimizers.recipes.distill.judge import teacher_judge
from optimizers.recipes.distill.loss import distillation_loss
from optimizers.reporters import NullReporter
from optimizers.training.hosts import Hosts, joined
from optimizers.training.loop import fit
from optimizers.zoo.models import build_model
from tests.modelfiles import linear_model
folder = Path(sys.argv[2])
write_dataset(load_digits_dataset(), folder)
digits = load_splits(folder / "dataset.npz")
teacher = torch.jit.script(linear_model(seed=3)).eval()
loss = distillation_loss(teacher, 2.0, 1.0)
with joined(Hosts(**json.loads(sys.argv[1])), NullReporter()):
    outcome = fit(build_model("mlp", {}), digits, (1, 64), TrainSettings(epochs=1, batch_size=64, ranks=1),
                  loss_fn=loss, evaluate_fn=teacher_judge(teacher, digits, torch.zeros(1, 64), "soft_targets", loss),
                  score_name="agreement", measure_ranks=False)
print(json.dumps({**outcome.distributed, "steps": outcome.steps}), flush=True)
"""


def test_a_student_distilled_from_a_torchscript_teacher_on_two_hosts(tmp_path):
    """The teacher travels with the work (as TorchScript bytes, optimizers.formats.portable) to the other host. Both
    hosts are fresh processes, as two workers' job children are."""
    port = free_port()
    (tmp_path / "first").mkdir()
    follower = _follower(_hosts(1, port), tmp_path)
    leader = subprocess.Popen([sys.executable, "-c", DISTILLING_LEADER, json.dumps(_hosts(0, port).__dict__),
                               str(tmp_path / "first")], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        led, led_err = leader.communicate(timeout=120)
        out, err = follower.communicate(timeout=60)
    finally:
        leader.kill()
        follower.kill()
    assert leader.returncode == 0, led_err
    assert follower.returncode == 0 and json.loads(out)["rounds"] == 1, err
    distributed = json.loads(led)
    assert (distributed["hosts"], distributed["replica_checks"]) == (2, distributed["steps"])


def test_a_host_that_never_comes_fails_the_job_with_the_reason(tmp_path):
    report = ListReporter()
    with pytest.raises(RecipeError, match=r"only 1 of the 2 hosts this job asks for joined within 2 s"):
        with joined(_hosts(0, free_port(), wait_s=2), report):
            pass


@pytest.mark.parametrize("follower_hosts, ranks, reason", [
    # The second host runs on one CPU core (taskset); the round asks each host for two replicas.
    ({}, 2, "host 2 of 2: it has 1 CPU cores, and each host is to run 2 replicas"),
    # The second host holds another secret: the work in the store is not sealed with it, and nothing of it runs.
    ({"secret": "cd" * 32}, 1, "host 2 of 2: the work in the job's store was not sealed by its first host"),
])
def test_a_host_that_cannot_take_its_part_fails_the_job_with_its_reason(digits, tmp_path, follower_hosts, ranks,
                                                                        reason):
    port = free_port()
    follower = _follower(_hosts(1, port, **follower_hosts), tmp_path, cpus="0")
    try:
        with pytest.raises(RecipeError, match=reason):
            with joined(_hosts(0, port), ListReporter()):
                fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=1, batch_size=64, ranks=ranks),
                    measure_ranks=False)
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert follower.returncode == 0, err  # it said why, then left when the job ended


def test_the_first_hosts_own_error_is_the_cause_not_the_other_hosts_lost_connection(digits, tmp_path):
    """A replica on the first host fails on its own (its model raises); the other host's replica then fails too, on
    the closed connection, and says so in the store. The job's error is the first one."""
    port = free_port()
    follower = _follower(_hosts(1, port), tmp_path)
    try:
        with pytest.raises(RecipeError) as failed:
            with joined(_hosts(0, port), ListReporter()):
                fit(FailsOnRankZero(), digits, MLP_SHAPE, TrainSettings(epochs=2, batch_size=64, ranks=1),
                    ListReporter(), measure_ranks=False)
        follower.communicate(timeout=60)
    finally:
        follower.kill()
    assert str(failed.value).startswith("training replica 0 of 2 failed: ValueError: this model's forward failed on "
                                        "replica 0 (its own fault)"), str(failed.value)


class _SignalsTheHostOnceTraining(ListReporter):
    """Sends `signal_` to the other host's whole process group (its job and its replicas) at the training's first
    progress: a round is under way on both hosts."""

    def __init__(self, group: int, signal_: signal.Signals) -> None:
        super().__init__()
        self.group, self.signal, self.sent_at = group, signal_, None

    def progress(self, done: int, total: int, stage: str) -> None:
        super().progress(done, total, stage)
        if self.sent_at is None:
            os.killpg(self.group, self.signal)
            self.sent_at = time.monotonic()


@pytest.mark.parametrize("signal_", [
    signal.SIGKILL,  # its processes die: the kernel closes their connections, and the replicas here fail on them
    signal.SIGSTOP,  # frozen, as a machine that lost power: its connections stay open, the replicas here wait on them
], ids=["killed", "frozen"])
def test_a_host_that_dies_without_a_word_fails_the_job_soon_and_no_replica_is_left(digits, tmp_path, monkeypatch,
                                                                                   signal_):
    """It writes no "gone": only its stopped beats tell, and the first host fails the round once it has heard nothing
    from it for HOST_SILENT_S, not after a collective's timeout (300 s) or never."""
    monkeypatch.setattr(heartbeats, "HOST_SILENT_S", 5.0)
    port = free_port()
    follower = _follower(_hosts(1, port), tmp_path, start_new_session=True)
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    report = _SignalsTheHostOnceTraining(follower.pid, signal_)
    try:
        with pytest.raises(RecipeError, match=r"^the training stopped: host 2 of 2 stopped answering: nothing from it "
                                              r"for 5 s \(its worker or machine may have died\)$"):
            with joined(_hosts(0, port), report):
                fit(build_model("mlp", {}), digits, MLP_SHAPE, TrainSettings(epochs=50, batch_size=64, ranks=1),
                    report, measure_ranks=False)
        failed_after = time.monotonic() - report.sent_at
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(follower.pid, signal.SIGKILL)
        follower.communicate(timeout=60)
    assert failed_after < 30, failed_after  # a collective would have waited 300 s, or forever between rounds
    left = [child for child in psutil.Process().children(recursive=True) if child.pid not in before]
    assert left == [], [child.cmdline() for child in left]  # this host's replicas were stopped with the job


def test_a_host_whose_beats_stop_for_host_silent_s_is_silent_and_the_next_round_is_refused(monkeypatch):
    monkeypatch.setattr(heartbeats, "HOST_SILENT_S", 1.0)
    port = free_port()
    first = Cluster(_hosts(0, port), open_store(_hosts(0, port)))
    first.listen()
    try:
        with heartbeats.beating("127.0.0.1", port, 1, timeout_s=10):
            time.sleep(2.5)  # longer than HOST_SILENT_S: the beats keep it answering
            assert first.silent() is None
            alive_at = time.monotonic()
            wait_until(lambda: first.heard_all_since(alive_at), timeout=5, interval=0.05, what="a beat")
        stopped_at = time.monotonic()
        wait_until(first.silent, timeout=5, interval=0.05, what="the host's silence")
        assert time.monotonic() - stopped_at < 4.0
        assert not first.heard_all_since(stopped_at)
        assert first.silent() == "host 2 of 2 stopped answering: nothing from it for 1 s (its worker or machine may " \
                                 "have died)"
        with pytest.raises(RecipeError, match=r"^the job cannot go on: host 2 of 2 stopped answering"):
            first.announce(1, "gloo", {"weights": torch.zeros(1)}, 1)
        assert not first.store.check(["round/0"])
    finally:
        first.finish()


def test_work_larger_than_a_store_value_travels_in_pieces_and_leaves_the_store_after_its_round(monkeypatch):
    """The store takes values of at most 8 MiB; a model is often larger."""
    monkeypatch.setattr(hosts_module, "CHUNK_BYTES", 1000)
    port = free_port()
    first = Cluster(_hosts(0, port), open_store(_hosts(0, port)))
    second = Cluster(_hosts(1, port), open_store(_hosts(1, port)))
    work = {"weights": torch.arange(20_000, dtype=torch.float32)}
    round_ = first.announce(2, "gloo", work, 1)
    assert round_.chunks > 80
    announced, backend, sealed_work = second.next_round(ListReporter())
    assert (announced, backend) == (round_, "gloo")
    assert torch.equal(torch.load(io.BytesIO(second.unseal(sealed_work)))["weights"], work["weights"])
    with pytest.raises(RecipeError, match="this recipe's training cannot be sent to the other hosts: .*; train it on "
                                          "one host"):
        first.announce(1, "gloo", lambda: None, 1)
    first.forget(round_)
    assert first.store.check(["round/0"]) and not any(first.store.check([f"round/0/work/{number}"])
                                                      for number in range(round_.chunks))


def test_the_work_in_the_store_is_encrypted_and_authenticated():
    """Anyone on the cluster network may list and read a job's store: the model and data in it are not readable
    without the job's secret, and work sealed with another secret, or changed, is refused before it is unpickled."""
    work = b"the owner's weights " * 1000
    sealed = seal(bytes.fromhex(SECRET), work)
    assert b"the owner's weights" not in sealed and unseal(bytes.fromhex(SECRET), sealed) == work
    assert seal(bytes.fromhex(SECRET), work) != sealed  # a fresh nonce each time
    with pytest.raises(RecipeError, match="not sealed by its first host"):
        unseal(bytes.fromhex("cd" * 32), sealed)
    changed = bytearray(sealed)
    changed[-1] ^= 1
    with pytest.raises(RecipeError, match="not sealed by its first host"):
        unseal(bytes.fromhex(SECRET), bytes(changed))
