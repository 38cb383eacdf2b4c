"""Built-in architectures: upload targets for state dicts and, later, distillation students.

This package's top imports only the architectures' settings (`optimizers.configs.architectures`, standard library
only), so the web process draws the settings forms from here. The torch code is in `optimizers.zoo.models`
(import it explicitly).
"""

from optimizers.configs.architectures import (
    ARCHITECTURE_CONFIGS,
    ArchitectureConfig,
    MLPConfig,
    ResNetConfig,
    SmallCNNConfig,
    TransformerConfig,
    parse_architecture,
)

__all__ = [
    "ARCHITECTURE_CONFIGS", "ArchitectureConfig", "MLPConfig", "ResNetConfig", "SmallCNNConfig",
    "TransformerConfig", "parse_architecture",
]
