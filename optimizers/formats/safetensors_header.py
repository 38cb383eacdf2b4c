"""Check a safetensors file's header without trusting it (standard library only).

A safetensors file is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the tensors' bytes back to back. Every number in the header
comes from the uploader, so each is checked against the file itself before anything is loaded:
the web process can call this on an upload, and the worker calls it before `safetensors` reads.
"""

import json
import math
import os
from typing import Any

from optimizers.errors import ModelFileError

# The `safetensors` library's own ceiling; real headers are a few hundred kB.
MAX_HEADER_BYTES = 100_000_000
# Bytes per element of every dtype the format names and torch can hold.
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
METADATA_KEY = "__metadata__"
_NOT_SAFETENSORS = "not a valid safetensors file"


def _refuse(reason: str) -> ModelFileError:
    return ModelFileError(f"{_NOT_SAFETENSORS}: {reason}")


def read_safetensors_header(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Return {name: {"dtype", "shape", "data_offsets"}} after checking it all; raise ModelFileError."""
    try:
        with open(path, "rb") as file:
            file_size = os.fstat(file.fileno()).st_size
            header_bytes = _read_header_bytes(file, file_size)
    except OSError as error:
        raise ModelFileError(f"cannot read the model file: {error.strerror or error}") from error
    entries = _parse_json(header_bytes)
    tensors = {name: _check_entry(name, entry) for name, entry in entries.items() if name != METADATA_KEY}
    _check_layout(tensors, data_size=file_size - 8 - len(header_bytes))
    return tensors


def _read_header_bytes(file: Any, file_size: int) -> bytes:
    if file_size < 8:
        raise _refuse(f"the file has {file_size} bytes, too short for the 8-byte header length")
    length = int.from_bytes(file.read(8), "little")
    if length > MAX_HEADER_BYTES:
        raise _refuse(f"the header claims {length:,} bytes; the limit is {MAX_HEADER_BYTES:,}")
    if length > file_size - 8:
        raise _refuse(f"the header claims {length:,} bytes but only {file_size - 8:,} follow (truncated file?)")
    if length < 2:
        raise _refuse(f"the header claims {length} bytes, too few for a JSON object")
    return file.read(length)


def _parse_json(header_bytes: bytes) -> dict[str, Any]:
    if not header_bytes.startswith(b"{"):
        raise _refuse("the header is not a JSON object")
    try:
        # The format allows trailing spaces as padding; a duplicate name would shadow a tensor.
        parsed = json.loads(header_bytes.decode("utf-8").rstrip(" "), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as error:
        raise _refuse(f"the header is not valid JSON ({error})") from error
    if not isinstance(parsed, dict):
        raise _refuse("the header is not a JSON object")
    metadata = parsed.get(METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _refuse(f"{METADATA_KEY} must map names to strings")
    return parsed


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the name {key!r} appears twice")
        result[key] = value
    return result


def _check_entry(name: str, entry: Any) -> dict[str, Any]:
    if not name or not isinstance(entry, dict):
        raise _refuse(f"tensor {name!r} is not described by an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise _refuse(f"tensor {name} has unknown dtype {dtype!r}; known: {', '.join(DTYPE_SIZES)}")
    if not _integers(shape) or any(size < 0 for size in shape):
        raise _refuse(f"tensor {name} has shape {shape!r}; expected a list of sizes")
    if not _integers(offsets) or len(offsets) != 2 or not 0 <= offsets[0] <= offsets[1]:
        raise _refuse(f"tensor {name} has data_offsets {offsets!r}; expected [begin, end] with begin <= end")
    expected_bytes = math.prod(shape) * DTYPE_SIZES[dtype]
    if offsets[1] - offsets[0] != expected_bytes:
        raise _refuse(f"tensor {name} ({dtype} {shape}) needs {expected_bytes:,} bytes but its data_offsets "
                      f"span {offsets[1] - offsets[0]:,}")
    return {"dtype": dtype, "shape": tuple(shape), "data_offsets": tuple(offsets)}


def _integers(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _check_layout(tensors: dict[str, dict[str, Any]], data_size: int) -> None:
    """The tensors must tile the data section exactly: no gap, no overlap, nothing past the end."""
    end_so_far, previous = 0, None
    for name, entry in sorted(tensors.items(), key=lambda item: item[1]["data_offsets"]):
        begin, end = entry["data_offsets"]
        if end > data_size:
            raise _refuse(f"tensor {name} ends at byte {end:,} of a data section of {data_size:,} bytes "
                          "(truncated file?)")
        if begin < end_so_far:
            raise _refuse(f"tensors {previous} and {name} overlap")
        if begin > end_so_far:
            raise _refuse(f"{begin - end_so_far:,} unaccounted bytes before tensor {name}")
        end_so_far, previous = end, name
    if end_so_far != data_size:
        raise _refuse(f"{data_size - end_so_far:,} bytes follow the last tensor")
