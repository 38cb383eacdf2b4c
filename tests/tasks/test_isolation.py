"""Which sandbox a worker has, and that it refuses uploaded models with none unless an administrator allows it."""
import pytest

from optimizers.job_spec import JobSpec
from tasks import isolation
from tasks.sandbox import Limits, SandboxError, run_sandboxed
from tests.modelfiles import linear_model, save_scripted


@pytest.fixture
def no_bubblewrap(monkeypatch):
    monkeypatch.setattr(isolation, "detect", lambda: isolation.Isolation(isolation.NONE, "bwrap is not installed"))
    monkeypatch.delenv(isolation.ALLOW_UNSANDBOXED, raising=False)


def _inspect(tmp_path):
    save_scripted(linear_model(), tmp_path / "mlp.pt")
    spec = JobSpec.build(action="inspect", model_path=str(tmp_path / "mlp.pt"), input_shape=[1, 64],
                         input_dtype="float32")
    return run_sandboxed(spec, limits=Limits(wall_seconds=60, memory_mb=4096), on_event=lambda event: None)


def test_without_a_sandbox_models_are_refused_and_the_reason_is_said(no_bubblewrap, tmp_path):
    with pytest.raises(SandboxError, match="no sandbox \\(bwrap is not installed\\) and will not run uploaded models"):
        _inspect(tmp_path)
    assert isolation.describe() == "none (bwrap is not installed); untrusted models refused"


def test_an_administrator_can_allow_running_without_one(no_bubblewrap, tmp_path, monkeypatch):
    monkeypatch.setenv(isolation.ALLOW_UNSANDBOXED, "1")
    assert _inspect(tmp_path)["format"] == "torchscript"
    assert isolation.describe().endswith(f"untrusted models ALLOWED by {isolation.ALLOW_UNSANDBOXED}")


@pytest.mark.skipif(not isolation.detect().active, reason="needs bubblewrap")
def test_with_bubblewrap_the_worker_says_what_the_sandbox_does():
    described = isolation.describe()
    assert described.startswith("bubblewrap: no network, private file system, private PIDs")
