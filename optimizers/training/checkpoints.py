"""Training checkpoints that survive a killed worker: written whole or not at all, read back without pickled code.

One file per training run (`last.pt` in the run's directory) holds everything a resumed run needs: the
model, optimizer and scheduler state, the epoch and step reached, the best epoch's weights, the
early-stopping count, the history and the random-number generators. One file rather than several, so a
crash can never leave the best weights of one epoch beside the optimizer state of another.
"""
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_NAME = "last.pt"
FORMAT_VERSION = 1


def checkpoint_path(directory: str | os.PathLike) -> Path:
    return Path(directory) / CHECKPOINT_NAME


def save_checkpoint(directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write `state` atomically: a temporary file in the same directory, flushed to disk, then renamed over.

    os.replace is atomic on one filesystem, so a reader (a retried job) finds either the previous
    checkpoint or this one, never half of one.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(directory)
    handle, temporary = tempfile.mkstemp(prefix=".last-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save({"format": FORMAT_VERSION, **state}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def load_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, Any] | None, str | None]:
    """(state, None) from the directory's checkpoint; (None, why) when there is none or it cannot be used.

    weights_only: a checkpoint is only tensors, numbers, strings and containers of them, and loading it
    must never run code (the directory lives on shared storage between retries).
    """
    path = checkpoint_path(directory)
    if not path.is_file():
        return None, None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file means: start over
        return None, f"the checkpoint {path} cannot be read ({type(error).__name__}); starting over"
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        return None, f"the checkpoint {path} is of an unknown format; starting over"
    return state, None


def rng_state() -> dict[str, Any]:
    """The global generators dropout and random initialisation draw from (CPU, and every CUDA device)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
