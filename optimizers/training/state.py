"""Where a training run stands after each epoch, and its round trip through a checkpoint.

`fit` keeps one `RunState`; after every epoch it is saved (with the model, optimizer, schedule and
random generators) so that a retried job resumes after the last finished epoch and ends where an
uninterrupted run would have.
"""
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from optimizers.training.checkpoints import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from optimizers.training.setup import fingerprint_difference, resync_learning_rate


@dataclass
class RunState:
    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps taken
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    best_val_accuracy: float = 0.0
    best_model: dict[str, torch.Tensor] | None = None
    stale_epochs: int = 0  # epochs since the validation loss last improved
    history: list[dict[str, float]] = field(default_factory=list)

    def record_epoch(self, model: nn.Module, entry: dict[str, float]) -> bool:
        """Add an epoch's figures; keep the model's weights when its validation loss is the lowest yet.

        Returns whether this epoch is the new best.
        """
        self.epoch, self.step = int(entry["epoch"]), int(entry["step"])
        self.history.append(entry)
        if entry["val_loss"] < self.best_val_loss:
            self.best_epoch, self.best_val_loss, self.best_val_accuracy = self.epoch, entry["val_loss"], entry[
                "val_accuracy"]
            self.best_model = {name: value.detach().clone() for name, value in model.state_dict().items()}
            self.stale_epochs = 0
            return True
        self.stale_epochs += 1
        return False

    def save(self, directory: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
             schedule: Any, shuffle: torch.Generator, run_fingerprint: dict) -> None:
        save_checkpoint(directory, {
            "fingerprint": run_fingerprint,
            "run": {"epoch": self.epoch, "step": self.step, "best_epoch": self.best_epoch,
                    "best_val_loss": self.best_val_loss, "best_val_accuracy": self.best_val_accuracy,
                    "stale_epochs": self.stale_epochs, "history": self.history},
            "best_model": self.best_model,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "rng": {**rng_state(), "shuffle": shuffle.get_state()},
        })


def resume(directory: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Any,
           shuffle: torch.Generator, run_fingerprint: dict) -> tuple[RunState, str | None]:
    """The run state from the directory's checkpoint, with model, optimizer, schedule and generators restored.

    Returns (a fresh RunState, why) when there is no usable checkpoint, leaving everything as it was;
    `why` is None when the directory simply holds none yet.
    """
    saved, problem = load_checkpoint(directory)
    if saved is None:
        return RunState(), problem
    difference = fingerprint_difference(saved.get("fingerprint", {}), run_fingerprint)
    if difference:
        return RunState(), (f"the checkpoint in {os.fspath(directory)} belongs to another run ({difference}); "
                            "starting over")
    device = next((value.device for value in model.state_dict().values()), torch.device("cpu"))
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])  # moves its state to the parameters' device
    schedule.load_state_dict(saved["schedule"])
    resync_learning_rate(optimizer, schedule)
    restore_rng_state(saved["rng"])
    shuffle.set_state(saved["rng"]["shuffle"])
    run = saved["run"]
    best = saved["best_model"]
    state = RunState(run["epoch"], run["step"], run["best_epoch"], run["best_val_loss"], run["best_val_accuracy"],
                     {name: value.to(device) for name, value in best.items()} if best is not None else None,
                     run["stale_epochs"], list(run["history"]))
    return state, None
