"""The compressed sparse state dict: a pruned model's weights without the zeros, for download.

A pruned model's dense formats still store every zero. This file stores each mostly-zero tensor as a
bitmask (1 bit per element, set where the value is not zero) plus its non-zero values in order; every
other tensor stays dense. The tensors go into one safetensors file (readable anywhere, no pickle),
which is stored deflated inside a zip: the bitmasks of an 80%-sparse model compress by about a third.

Layout of the safetensors member, for a sparse tensor "layers.1.weight":
  "layers.1.weight::mask"    uint8, the mask of the flattened tensor packed 8 per byte, lowest bit first
                             (numpy.packbits(..., bitorder="little"))
  "layers.1.weight::values"  the non-zero values, in the tensor's dtype, in row-major order
The metadata entry "sparse" is JSON: {name: {"shape": [...], "dtype": "float32"}} for each sparse tensor.
"""

import io
import json
import os
import zipfile

import numpy as np
import safetensors.torch
import torch

FORMAT = "slimforge-sparse-v1"
MEMBER = "model.sparse.safetensors"
MASK, VALUES = "::mask", "::values"
_DTYPES = {str(dtype).removeprefix("torch."): dtype
           for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64)}


def encode_state_dict(state_dict: dict[str, torch.Tensor]) -> bytes:
    """The zip file's bytes: each float tensor stored sparse where that is smaller, the rest dense."""
    tensors, sparse = {}, {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        if MASK in name or VALUES in name:
            raise ValueError(f"tensor name {name!r} contains a reserved suffix ({MASK} or {VALUES})")
        if _sparse_is_smaller(tensor):
            nonzero = (tensor != 0).reshape(-1)
            tensors[name + MASK] = torch.from_numpy(np.packbits(nonzero.numpy(), bitorder="little"))
            tensors[name + VALUES] = tensor.reshape(-1)[nonzero].clone()
            sparse[name] = {"shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch.")}
        else:
            tensors[name] = tensor
    metadata = {"format": FORMAT, "sparse": json.dumps(sparse)}
    payload = safetensors.torch.save(tensors, metadata=metadata)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        bundle.writestr(MEMBER, payload)
    return archive.getvalue()


def save_sparse_state_dict(state_dict: dict[str, torch.Tensor], path: str | os.PathLike) -> int:
    """Write the compressed sparse state dict to `path`; return its size in bytes."""
    data = encode_state_dict(state_dict)
    with open(path, "wb") as file:
        file.write(data)
    return len(data)


def load_sparse_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The dense state dict back from a file written by `save_sparse_state_dict`; ValueError if malformed."""
    with zipfile.ZipFile(path) as bundle:
        if bundle.namelist() != [MEMBER]:
            raise ValueError(f"not a Slimforge sparse state dict: expected one member {MEMBER!r}, "
                             f"found {bundle.namelist()[:5]}")
        payload = bundle.read(MEMBER)
    return decode_payload(payload)


def decode_payload(payload: bytes) -> dict[str, torch.Tensor]:
    """The dense state dict from the safetensors member's bytes."""
    metadata = _metadata(payload)
    tensors = safetensors.torch.load(payload)
    sparse = json.loads(metadata.get("sparse", "{}"))
    dense = {name: tensor for name, tensor in tensors.items() if not name.endswith((MASK, VALUES))}
    for name, entry in sparse.items():
        dense[name] = _rebuild(name, entry, tensors.get(name + MASK), tensors.get(name + VALUES))
    return dense


def dense_size(state_dict: dict[str, torch.Tensor]) -> int:
    """Bytes of the same state dict as a plain safetensors file, the size the sparse file is compared with."""
    return len(safetensors.torch.save({name: tensor.detach().cpu().contiguous()
                                       for name, tensor in state_dict.items()}))


def _sparse_is_smaller(tensor: torch.Tensor) -> bool:
    if tensor.dtype not in _DTYPES.values() or tensor.numel() < 64:
        return False  # small tensors (biases, norms) gain nothing worth the extra entries
    nonzero = int(torch.count_nonzero(tensor))
    bits = tensor.element_size() * 8
    return nonzero * bits + tensor.numel() < tensor.numel() * bits


def _metadata(payload: bytes) -> dict[str, str]:
    (length,) = np.frombuffer(payload[:8], dtype="<u8")
    header = json.loads(payload[8:8 + int(length)])
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT:
        raise ValueError(f"not a Slimforge sparse state dict: format is {metadata.get('format')!r}, not {FORMAT!r}")
    return metadata


def _rebuild(name: str, entry: dict, mask: torch.Tensor | None, values: torch.Tensor | None) -> torch.Tensor:
    if mask is None or values is None:
        raise ValueError(f"sparse tensor {name!r} lacks its mask or its values")
    dtype = _DTYPES.get(entry.get("dtype"))
    shape = entry.get("shape")
    if dtype is None or not isinstance(shape, list):
        raise ValueError(f"sparse tensor {name!r} has a bad entry: {entry!r}")
    count = int(np.prod(shape, dtype=np.int64))
    nonzero = torch.from_numpy(np.unpackbits(mask.numpy(), count=count, bitorder="little").astype(bool))
    if len(mask) != -(-count // 8) or int(nonzero.sum()) != values.numel() or values.dtype != dtype:
        raise ValueError(f"sparse tensor {name!r}: its mask, values and shape {shape} disagree")
    dense = torch.zeros(count, dtype=dtype)
    dense[nonzero] = values
    return dense.reshape(shape)
