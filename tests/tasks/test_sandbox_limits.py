"""The worker-side sandbox: hostile models hit its limits and become clear messages, not dead workers."""
import time

import pytest

from optimizers.job_spec import JobSpec
from tasks.sandbox import Cancel, JobCancelled, Limits, SandboxError, run_sandboxed
from tests.modelfiles import Hungry, Spin, linear_model, save_scripted


def _inspect(path, limits, events=None):
    spec = JobSpec.build(action="inspect", model_path=str(path), input_shape=[1, 64], input_dtype="float32")
    return run_sandboxed(spec, limits=limits, on_event=(events.append if events is not None else lambda e: None))


def test_a_model_that_never_returns_is_stopped_at_the_time_limit(tmp_path):
    save_scripted(Spin(), tmp_path / "spin.pt")
    started = time.monotonic()
    with pytest.raises(SandboxError, match="longer than its limit of 5 s"):
        _inspect(tmp_path / "spin.pt", Limits(wall_seconds=5, memory_mb=4096))
    assert time.monotonic() - started < 15


def test_a_model_that_asks_for_too_much_memory_is_refused(tmp_path):
    save_scripted(Hungry(), tmp_path / "hungry.pt")
    with pytest.raises(SandboxError, match="out of memory"):
        _inspect(tmp_path / "hungry.pt", Limits(wall_seconds=60, memory_mb=2048))


def _tree_rss_mb(process) -> float:
    """The sandbox's processes (bubblewrap, and the job below it) together."""
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def test_inspection_reports_events_and_samples(tmp_path):
    save_scripted(linear_model(), tmp_path / "mlp.pt")
    events, samples = [], []
    spec = JobSpec.build(action="inspect", model_path=str(tmp_path / "mlp.pt"), input_shape=[1, 64],
                         input_dtype="float32")
    info = run_sandboxed(spec, limits=Limits(wall_seconds=60, memory_mb=4096), on_event=events.append,
                         on_sample=lambda child: samples.append((child.pid, _tree_rss_mb(child))),
                         sample_interval=0.1)
    assert info["format"] == "torchscript" and info["output_shape"] == [1, 10]
    assert {e["kind"] for e in events} >= {"stage", "progress"}
    # A real process with torch loaded (the first and last samples may catch bubblewrap alone, starting or ending).
    assert samples and max(rss for _, rss in samples) > 50
    assert len({pid for pid, _ in samples}) == 1  # always the same child: the root of the sandbox's processes


def test_cpu_time_is_limited_too(tmp_path, monkeypatch):
    # A wall clock that never runs out, so the CPU-time limit (wall_seconds x threads + 5 s) is what stops it.
    import tasks.sandbox as sandbox

    save_scripted(Spin(), tmp_path / "spin.pt")
    monkeypatch.setattr(sandbox, "_apply_limits", lambda limits: _cpu_only(seconds=2))
    with pytest.raises(SandboxError, match="CPU-time limit"):
        _inspect(tmp_path / "spin.pt", Limits(wall_seconds=60, memory_mb=4096))


def _cpu_only(seconds: int):
    import resource

    def apply():
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))
    return apply


def test_a_cancelled_job_that_never_reaches_a_step_boundary_is_stopped_hard(tmp_path):
    save_scripted(Spin(), tmp_path / "spin.pt")  # one forward that never returns: no step boundary to stop at
    spec = JobSpec.build(action="inspect", model_path=str(tmp_path / "spin.pt"), input_shape=[1, 64],
                         input_dtype="float32")
    # Cancelled a second after the job entered the endless forward (its "check input" step): a fixed delay from the
    # start raced the child's start-up on a slow machine, and the job then stopped at the boundary before it.
    inside = []

    def on_event(event):
        if event.get("kind") == "stage" and event.get("name") == "check input":
            inside.append(time.monotonic())

    with pytest.raises(JobCancelled, match="did not stop at a step boundary within 2 s and was stopped hard"):
        run_sandboxed(spec, limits=Limits(wall_seconds=120, memory_mb=4096), on_event=on_event,
                      cancel=Cancel(requested=lambda: bool(inside) and time.monotonic() - inside[0] > 1, grace_s=2,
                                    poll_s=0.2))
    assert time.monotonic() - inside[0] < 10


def test_past_its_soft_limit_a_job_is_asked_to_stop_and_the_hard_limit_still_holds(tmp_path):
    """Spin never reaches a step boundary: asked to stop at the soft limit (8 s), it is killed at the hard one
    (14 s), not after the cancel grace period; `timed_out` tells the worker it was the clock, not the owner. (The
    soft limit leaves a slow machine's child time to start and enter the forward before it comes.)"""
    save_scripted(Spin(), tmp_path / "spin.pt")
    cancel = Cancel(requested=lambda: False, grace_s=1, poll_s=0.2, soft_limit_s=8)
    started = time.monotonic()
    with pytest.raises(SandboxError, match="longer than its limit of 14 s"):
        _inspect_with(tmp_path / "spin.pt", Limits(wall_seconds=14, memory_mb=4096), cancel)
    assert cancel.timed_out and 13 < time.monotonic() - started < 26


def _inspect_with(path, limits, cancel):
    spec = JobSpec.build(action="inspect", model_path=str(path), input_shape=[1, 64], input_dtype="float32")
    return run_sandboxed(spec, limits=limits, on_event=lambda e: None, cancel=cancel)


def test_every_recipe_has_its_time_limits(settings):
    from optimizers.configs import RECIPE_CONFIGS
    from tasks.entrypoints import time_limits

    assert set(settings.RUN_SECONDS_BY_RECIPE) == set(RECIPE_CONFIGS)
    settings.RUN_SECONDS_BY_RECIPE = {**settings.RUN_SECONDS_BY_RECIPE, "prune": 40, "quantize": 3600}
    assert time_limits("prune") == (36, 40) and time_limits("quantize") == (3300, 3600)
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > max(settings.RUN_SECONDS_BY_RECIPE.values())
