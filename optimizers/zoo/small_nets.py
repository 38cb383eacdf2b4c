"""The MLP and the small CNN: quick to train on small data, the usual distillation students."""

import torch
from torch import nn

from optimizers.configs.architectures import MLPConfig, SmallCNNConfig


class MLP(nn.Module):
    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]  # so 1x8x8 digit images feed it as they are
        features = config.in_features
        for width in config.hidden:
            layers += [nn.Linear(features, width), nn.ReLU(), nn.Dropout(config.dropout)]
            features = width
        layers.append(nn.Linear(features, config.num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SmallCNN(nn.Module):
    def __init__(self, config: SmallCNNConfig) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        channels = config.in_channels
        for out_channels in config.channels:
            stages += [nn.Conv2d(channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels = out_channels
        self.features = nn.Sequential(*stages)
        # Flattening (rather than global pooling) keeps where a stroke is: on 8x8 digits that matters.
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(config.classifier_features(), config.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
