"""Small real models made in code, saved as users would save them."""
import io

import torch
from torch import nn


class LinearNet(nn.Module):
    """Linear-heavy, so int8 dynamic quantization visibly shrinks it."""

    def __init__(self, features: int = 64, hidden: int = 256, classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(),
                                  nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x):
        return self.body(x)


def linear_model(seed: int = 0, hidden: int = 256) -> nn.Module:
    torch.manual_seed(seed)
    return LinearNet(hidden=hidden).eval()


def linear_torchscript_bytes(seed: int = 0, hidden: int = 256) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(linear_model(seed, hidden)), buffer)
    return buffer.getvalue()


EXAMPLE_SHAPE = "1,64"


class Spin(nn.Module):
    """Never returns: the sandbox's wall-clock limit must stop it."""

    def forward(self, x):
        while bool(x.sum() > -1.0):
            x = x + 1
        return x


class Hungry(nn.Module):
    """Asks for 8 GB: the sandbox's memory limit must refuse it."""

    def forward(self, x):
        return torch.ones(2_000_000_000).sum() + x


def save_scripted(module: nn.Module, path) -> None:
    torch.jit.save(torch.jit.script(module), str(path))


def linear_export_bytes(seed: int = 0, hidden: int = 256) -> bytes:
    buffer = io.BytesIO()
    program = torch.export.export(linear_model(seed, hidden), (torch.randn(1, 64),))
    torch.export.save(program, buffer)
    return buffer.getvalue()
