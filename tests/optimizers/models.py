"""Small models built in code, the way users build theirs; saved by the fixtures in conftest."""

import torch
from torch import nn


class MLP(nn.Module):
    """Linear-heavy: nearly all of its 136k weights are in Linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SmallCNN(nn.Module):
    """Convolutions (left alone by quantize) with a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(4)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class NoLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).relu()


class Chatty(nn.Module):
    """Prints from inside TorchScript, which writes to the process's C++ stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("hello from inside the model", x.shape)
        return self.fc(x)


def build(model_class: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    return model_class().eval()


MLP_INPUT = (1, 256)
CNN_INPUT = (1, 3, 32, 32)


class TokenClassifier(nn.Module):
    """Takes int64 token ids and returns (logits, pooled): tests integer inputs and tuple outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.embed(tokens).mean(dim=1)
        return self.head(pooled), pooled


class TiedLanguageModel(nn.Module):
    """The output layer reuses the embedding matrix, as many language models do."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, 64)
        self.out = nn.Linear(64, 1000, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(tokens))
