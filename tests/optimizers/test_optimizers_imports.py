"""optimizers runs on GPU boxes with PyTorch alone, and the web process imports its configs without torch."""

import json

FORBIDDEN = ("django", "celery", "channels", "rest_framework", "webapp", "tasks")


def imported_top_level_packages(run_python, statement: str) -> set[str]:
    listing = "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    code = f"{statement}; import sys, json; {listing}"
    finished = run_python("-c", code)
    assert finished.returncode == 0, finished.stderr
    return set(json.loads(finished.stdout.strip().splitlines()[-1]))


def test_optimizers_never_imports_web_or_task_code(run_python):
    loaded = imported_top_level_packages(
        run_python, "import optimizers.job_child, optimizers.job_runner, optimizers.recipes, optimizers.registry"
    )
    assert "torch" in loaded  # the statement really loaded the heavy modules
    assert loaded.isdisjoint(FORBIDDEN)


def test_configs_shapes_errors_and_job_spec_import_without_torch(run_python):
    loaded = imported_top_level_packages(
        run_python, "import optimizers.configs, optimizers.shapes, optimizers.errors, optimizers.job_spec"
    )
    assert "optimizers" in loaded
    assert loaded.isdisjoint({"torch", "numpy", *FORBIDDEN})
