"""Fixtures for the optimizers tests: the models of `models.py`, saved in both formats.

Saved once per session: torch.export's first call costs about a second, and several tests
read the same files without modifying them.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.optimizers.models import CNN_INPUT, MLP, MLP_INPUT, Chatty, NoLinear, SmallCNN, build
from tests.paths import REPO_ROOT


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def mlp_pt(model_dir) -> Path:
    path = model_dir / "mlp.pt"
    torch.jit.save(torch.jit.script(build(MLP)), str(path))
    return path


@pytest.fixture(scope="session")
def mlp_pt2(model_dir) -> Path:
    path = model_dir / "mlp.pt2"
    torch.export.save(torch.export.export(build(MLP), (torch.randn(MLP_INPUT),)), str(path))
    return path


@pytest.fixture(scope="session")
def cnn_pt(model_dir) -> Path:
    path = model_dir / "cnn.pt"
    torch.jit.save(torch.jit.trace(build(SmallCNN), torch.randn(CNN_INPUT)), str(path))
    return path


@pytest.fixture(scope="session")
def cnn_pt2_dynamic_batch(model_dir) -> Path:
    """Exported with a dynamic batch (1..64); an example batch of 2 keeps export from pinning it."""
    path = model_dir / "cnn_dynamic.pt2"
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(build(SmallCNN), (torch.randn(2, 3, 32, 32),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


@pytest.fixture(scope="session")
def no_linear_pt(model_dir) -> Path:
    path = model_dir / "no_linear.pt"
    torch.jit.save(torch.jit.script(build(NoLinear)), str(path))
    return path


@pytest.fixture(scope="session")
def chatty_pt(model_dir) -> Path:
    path = model_dir / "chatty.pt"
    torch.jit.save(torch.jit.script(build(Chatty)), str(path))
    return path


@pytest.fixture
def run_python():
    """Run this interpreter in a fresh process with the repository importable, as a worker would."""

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SLIMFORGE_TORCH_THREADS": "1"}
        return subprocess.run(
            [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )

    return run


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """scikit-learn's digits as the product splits them: 1,438 train / 359 validation samples."""
    from optimizers.data.job import load_digits_dataset, write_dataset
    from optimizers.data.splits import load_splits

    folder = tmp_path_factory.mktemp("digits")
    write_dataset(load_digits_dataset(), folder)
    return load_splits(folder / "dataset.npz")
