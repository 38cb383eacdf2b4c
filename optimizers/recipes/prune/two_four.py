"""The 2:4 pattern and a layer's dense-against-sparse timing: shared by the semi-structured method and the GPU
timing it runs (`two_four_timing`, loaded only on CUDA workers), so neither imports the other.
"""
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LayerTiming:
    dense_ms: float
    sparse_ms: float

    @property
    def speedup(self) -> float:
        return self.dense_ms / self.sparse_ms if self.sparse_ms > 0 else 0.0



def two_four_mask(weight: torch.Tensor) -> torch.Tensor:
    """Keep the 2 largest-magnitude weights of every 4 consecutive ones along each row."""
    groups = weight.detach().abs().reshape(-1, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(1, groups.topk(2, dim=1).indices, True)
    return keep.reshape(weight.shape)
