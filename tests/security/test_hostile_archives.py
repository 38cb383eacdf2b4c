"""Red team, through the archive: hostile and broken uploads inspected by the real sandbox child, as the worker
runs it.

The marker file that each pickle tries to create must never appear, and each job must end with one
clear ModelFileError line. The children run a few at a time (each imports torch); every other case
of `hostile_files` is also checked in process by test_hostile_archives_in_process.py.
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.optimizers.hostile_files import build_cases
from tests.paths import REPO_ROOT

# The uploads the sandbox must refuse whatever their name: one child each.
CASES = [
    "raw pickle", "raw pickle named .pt", "torch.save zip", "legacy torch.save", ".pt2 with hostile sample inputs",
    "truncated archive", "empty file", "PNG renamed .pt", "ONNX with external data", "truncated ONNX", "random bytes",
    ".pt2 whose file-reading op is spelled in JSON escapes", "TorchScript that writes a file",
]


def run_child(spec_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SLIMFORGE_TORCH_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "optimizers.job_child", str(spec_path)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, cnn_pt2_dynamic_batch):
    folder = tmp_path_factory.mktemp("hostile")
    marker = folder / "MARKER"
    cases = build_cases(folder, marker, cnn_pt2_dynamic_batch)
    specs = {}
    for number, case in enumerate(CASES):
        path, extra, _ = cases[case]
        specs[case] = folder / f"spec{number}.json"
        specs[case].write_text(json.dumps({"action": "inspect", "model_path": str(path), "input_shape": [1, 256],
                                           **extra}))
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        finished = dict(zip(specs, pool.map(run_child, specs.values()), strict=True))
    return {case: (finished[case], cases[case][2]) for case in CASES}, marker


@pytest.mark.parametrize("case", CASES)
def test_hostile_file_is_refused_clearly_and_runs_nothing(outcomes, case):
    results, marker = outcomes
    finished, expected = results[case]
    assert finished.returncode == 1, finished.stderr
    final = json.loads(finished.stdout.splitlines()[-1])
    assert final["kind"] == "error" and final["error_type"] == "ModelFileError", final
    assert expected in final["error"]
    assert "\n" not in final["error"] and "\x1b" not in final["error"]
    assert "Traceback" not in finished.stderr  # a refusal, not a crash
    assert not marker.exists(), f"{case}: code from the upload ran"
