"""Small models trained on scikit-learn's digits for the quantize tests, built once per test session.

Trained (briefly) rather than random: a random network's outputs are nearly flat, so top-1 agreement and
accuracy say nothing about what quantization did to it.
"""
import functools
import tempfile
from pathlib import Path

import torch
from torch import nn

from optimizers.data.job import load_digits_dataset, write_dataset
from optimizers.data.splits import DataSplits, load_splits

DIGITS_INPUT = (1, 1, 8, 8)


@functools.cache
def digits() -> DataSplits:
    folder = Path(tempfile.mkdtemp(prefix="slimforge-quantize-digits-"))
    write_dataset(load_digits_dataset(), folder)
    return load_splits(folder / "dataset.npz")


class DigitsMLP(nn.Module):
    """Linear-heavy (about 200k weights, all in Linear layers) so int8 files must shrink about 4x."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, 384), nn.ReLU(), nn.Linear(384, 384), nn.ReLU(),
                                    nn.Linear(384, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DigitsCNN(nn.Module):
    """Convolution, batch norm and ReLU (fused by static quantization) with a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class DigitsRNN(nn.Module):
    """Reads each 8x8 digit as 8 rows of 8 pixels: LSTM, then GRU, then a Linear head (used untrained)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 96, batch_first=True)
        self.gru = nn.GRU(96, 96, batch_first=True)
        self.head = nn.Linear(96, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, _ = self.lstm(x.reshape(-1, 8, 8))  # -1, not len(x): a trace would fix the batch size
        rows, _ = self.gru(rows)
        return self.head(rows[:, -1])


@functools.cache
def trained(model_class: type[nn.Module], epochs: int = 4) -> nn.Module:
    """`model_class` trained on the digits' train split with Adam; eval mode. Shared: never modify it."""
    torch.manual_seed(0)
    model, splits = model_class(), digits()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: a second thread costs more in hand-offs than it computes
    try:
        for _ in range(epochs):
            order = torch.randperm(len(splits.train_x))
            for start in range(0, len(order), 128):
                batch = order[start:start + 128]
                loss = nn.functional.cross_entropy(model(splits.train_x[batch]), splits.train_y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def accuracy(model, splits: DataSplits | None = None) -> float:
    splits = splits or digits()
    with torch.no_grad():
        predicted = model(splits.val_x).argmax(dim=1)
    return float((predicted == splits.val_y).float().mean())


def example() -> torch.Tensor:
    return torch.randn(DIGITS_INPUT, generator=torch.Generator().manual_seed(0))
