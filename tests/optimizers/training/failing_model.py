"""A model that fails on the first host's replica alone, importable by a further host's process (its work arrives by
pickle): the first host's own error, not the other host's lost connection, is the cause its user must hear of."""
import torch
import torch.distributed as dist
from torch import nn


class FailsOnRankZero(nn.Module):
    def __init__(self, after_steps: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.after_steps, self.steps = after_steps, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and dist.is_initialized():
            self.steps += 1
            if dist.get_rank() == 0 and self.steps > self.after_steps:
                raise ValueError("this model's forward failed on replica 0 (its own fault)")
        return self.net(x)
