"""A small Transformer encoder that classifies a sequence of token ids (int64 [batch, max_len]).

Learned positional embeddings and mean pooling over positions: no padding mask and no class
token, so the graph is the same for every input and traces, exports and converts to ONNX.
"""

import torch
from torch import nn

from optimizers.configs.architectures import TransformerConfig


class TransformerClassifier(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position = nn.Parameter(torch.zeros(1, config.max_len, config.d_model))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.heads, dim_feedforward=4 * config.d_model, dropout=0.1,
            batch_first=True, norm_first=True,
        )
        # Nested tensors only help with padding masks, which this model does not take.
        self.encoder = nn.TransformerEncoder(layer, config.layers, norm=nn.LayerNorm(config.d_model),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(config.d_model, config.num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens) + self.position[:, : tokens.shape[1]]
        x = self._encode_plain(x) if torch.jit.is_tracing() else self.encoder(x)
        return self.head(x.mean(dim=1))

    @torch.jit.unused
    def _encode_plain(self, x: torch.Tensor) -> torch.Tensor:
        # In eval mode without gradients each encoder layer runs one fused kernel; a trace would
        # record that as a single opaque op and hide its Linear layers from quantization.
        previous = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            return self.encoder(x)
        finally:
            torch.backends.mha.set_fastpath_enabled(previous)
