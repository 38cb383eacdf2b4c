"""Built-in architectures: upload targets for state dicts and, later, distillation students.

Standard library only, like `specs` which it re-exports: the web process draws the settings
forms from here. The torch code is in `optimizers.zoo.models` (import it explicitly).
"""

from optimizers.zoo.specs import (
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
