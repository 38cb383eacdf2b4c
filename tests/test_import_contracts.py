"""The import-linter contracts of pyproject.toml hold (the shape of the house), and the web never loads torch."""
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.paths import REPO_ROOT as ROOT


def configured_contracts() -> list[dict]:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["tool"]["importlinter"]["contracts"]


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(configured_contracts())} kept, 0 broken" in result.stdout


def test_the_contracts_hold_the_shape_the_architecture_names():
    types = sorted(contract["type"] for contract in configured_contracts())
    assert types.count("forbidden") >= 4 and "layers" in types and "acyclic_siblings" in types


def test_the_web_process_does_not_load_torch():
    code = ("import django, sys; django.setup(); import webapp.urls, webapp.asgi; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_worker_main_process_does_not_load_torch():
    """A Celery worker forks its pool from its main process, and a forked child cannot use a CUDA context it
    inherited: the main process must never initialize CUDA, so it never even imports torch (the sandbox's fresh
    child processes do)."""
    code = ("import django, sys; django.setup(); from tasks.celery import app; "
            "[__import__(name) for name in app.conf.include]; import tasks.placement; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
