"""Child side of the worker sandbox: `python -m optimizers.job_child SPEC_JSON_PATH`.

The parent (tasks/) starts this process with resource limits and reads its stdout. The
protocol on stdout is JSON lines: events (progress, stage, metric, log), then exactly one
final line, {"kind": "result", "result": {...}} with exit code 0, or {"kind": "error",
"error": "...", "error_type": "..."} with exit code 1. Sending SIGUSR1 asks the job to stop at
its next step boundary (it then ends with error_type "Cancelled").

Model code can print (TorchScript print ops write to the C++ stdout), so before anything
else the real stdout is moved to a private descriptor for events and fd 1 is pointed at
stderr: stray prints land in the parent's log instead of corrupting the event stream.
"""

import json
import os
import signal
import sys
import threading
import traceback
from typing import Any, TextIO

from optimizers.errors import SlimforgeError, first_line
from optimizers.events import ERROR_LINE, RESULT_LINE

THREADS_VARIABLE = "SLIMFORGE_TORCH_THREADS"


def claim_event_stream() -> TextIO:
    """Move the real stdout to a private fd for events; send fd 1 (and sys.stdout) to stderr."""
    sys.stdout.flush()
    event_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(event_fd, "w", encoding="utf-8", buffering=1)


def torch_threads_from_env() -> int:
    raw = os.environ.get(THREADS_VARIABLE, "1")  # one thread: latency figures that repeat
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"{THREADS_VARIABLE} must be a positive integer; got {raw!r}")
    return int(raw)


def error_line(error: BaseException) -> dict[str, Any]:
    if isinstance(error, SlimforgeError):
        message = str(error)
    else:
        # Not one of ours: the type name tells the user (and us) more than torch's first line alone.
        message = f"{type(error).__name__}: {first_line(error)}"
    return {"kind": ERROR_LINE, "error": message, "error_type": type(error).__name__}


def run(spec_path: str, events: TextIO, cancel: threading.Event) -> dict[str, Any]:
    # torch is imported only here, after the event stream is safe from anything it prints.
    import torch

    from optimizers.job_spec import read_spec
    from optimizers.reporters import JsonLinesReporter

    torch.set_num_threads(torch_threads_from_env())
    spec = read_spec(spec_path)
    reporter = JsonLinesReporter(events, cancel)
    reporter.log(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    # Imported per action: a dataset job needs none of the recipes, a model job none of the readers.
    if spec.action == "dataset":
        from optimizers.data.job import prepare_dataset

        return prepare_dataset(spec, reporter)
    if spec.action == "ranks":  # a further host of a multi-host job: replicas only
        from optimizers.training.follower import serve
        from optimizers.training.hosts import Hosts

        return serve(Hosts.from_spec(spec.hosts), reporter, spec.out_dir)
    from optimizers.job_runner import inspect_model, run_recipe

    return inspect_model(spec, reporter) if spec.action == "inspect" else run_recipe(spec, reporter)


def main(argv: list[str]) -> int:
    events = claim_event_stream()
    cancel = threading.Event()
    signal.signal(signal.SIGUSR1, lambda signum, frame: cancel.set())
    try:
        if len(argv) != 2:
            raise ValueError("usage: python -m optimizers.job_child SPEC_JSON_PATH")
        # Serialised inside the try: a result that is not valid JSON is an error like any other.
        result = run(argv[1], events, cancel)
        final, code = json.dumps({"kind": RESULT_LINE, "result": result}, allow_nan=False), 0
    except Exception as error:  # noqa: BLE001 - the parent must always get a final line
        if isinstance(error, SlimforgeError):
            print(f"slimforge job failed: {error}", file=sys.stderr)
        else:
            traceback.print_exc(file=sys.stderr)  # a bug or a torch failure: keep the whole story
        final, code = json.dumps(error_line(error)), 1
    events.write(final + "\n")
    events.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
