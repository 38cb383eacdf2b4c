"""Hostile and broken safetensors files: each one a clear ModelFileError before any tensor is read."""

import json
import os
import struct

import pytest

from optimizers.errors import ModelFileError
from optimizers.formats.statedict import load_safetensors_model, read_safetensors_header, save_safetensors
from optimizers.zoo.models import build_model

F32_PAIR = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def write(path, header, data: bytes = b"", *, claimed_length: int | None = None) -> str:
    """Write a safetensors file by hand; `claimed_length` lies about the header's size."""
    header_bytes = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(header_bytes) if claimed_length is None else claimed_length
    path.write_bytes(struct.pack("<Q", length) + header_bytes + data)
    return str(path)


def refused(path) -> str:
    with pytest.raises(ModelFileError) as caught:
        read_safetensors_header(path)
    with pytest.raises(ModelFileError) as again:
        load_safetensors_model(path, "mlp", {})  # the same refusal, before any model is built
    assert str(again.value) == str(caught.value)
    return str(caught.value)


def test_a_well_formed_hand_written_file_passes(tmp_path):
    path = write(tmp_path / "ok", {"__metadata__": {"format": "pt"}, "x": F32_PAIR}, b"\0" * 8)
    assert read_safetensors_header(path) == {"x": {"dtype": "F32", "shape": (2,), "data_offsets": (0, 8)}}


def test_header_longer_than_the_file_is_refused(tmp_path):
    path = write(tmp_path / "lying", {"x": F32_PAIR}, b"\0" * 8, claimed_length=10_000)
    assert "the header claims 10,000 bytes but only" in refused(path)


def test_absurd_header_length_is_refused_without_reading_it(tmp_path):
    path = write(tmp_path / "huge", {"x": F32_PAIR}, b"\0" * 8, claimed_length=2**63)
    assert "the limit is 100,000,000" in refused(path)


def test_truncated_file_names_the_cut_tensor(tmp_path):
    path = tmp_path / "model.safetensors"
    save_safetensors(build_model("mlp", {}), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    message = refused(str(path))
    assert "ends at byte" in message and "(truncated file?)" in message


@pytest.mark.parametrize("size", [0, 5])
def test_files_shorter_than_the_length_field_are_refused(size, tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"\1" * size)
    assert f"the file has {size} bytes" in refused(str(path))


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "noise"
    path.write_bytes(os.urandom(4096))
    assert refused(str(path)).startswith("not a valid safetensors file: ")


def test_a_pickle_is_refused_without_being_unpickled(tmp_path):
    path = tmp_path / "pickle"
    path.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    assert refused(str(path)).startswith("not a valid safetensors file: ")


@pytest.mark.parametrize("header, data, expected", [
    (b"[1, 2, 3]", b"", "the header is not a JSON object"),
    (b"{not json}", b"", "the header is not valid JSON"),
    (b'{"x": 1, "x": 2}', b"", "appears twice"),
    (b"{\"x\": \"\xff\"}", b"", "the header is not valid JSON"),
    ({"__metadata__": {"a": 1}}, b"", "__metadata__ must map names to strings"),
    ({"x": [1]}, b"", "tensor 'x' is not described by an object"),
    ({"x": {**F32_PAIR, "dtype": "F4"}}, b"\0" * 8, "tensor x has unknown dtype 'F4'"),
    ({"x": {**F32_PAIR, "shape": [-2]}}, b"\0" * 8, "tensor x has shape [-2]"),
    ({"x": {**F32_PAIR, "shape": [True, 2]}}, b"\0" * 8, "tensor x has shape [True, 2]"),
    ({"x": {**F32_PAIR, "data_offsets": [8, 0]}}, b"\0" * 8, "expected [begin, end] with begin <= end"),
    ({"x": {**F32_PAIR, "data_offsets": [0, 12]}}, b"\0" * 12, "needs 8 bytes but its data_offsets span 12"),
    ({"x": {**F32_PAIR, "shape": [2**40, 2**40]}}, b"\0" * 8, "needs 4,835,703,278,458,516,698,824,704 bytes"),
    ({"x": F32_PAIR, "y": {**F32_PAIR, "data_offsets": [4, 12]}}, b"\0" * 12, "tensors x and y overlap"),
    ({"x": F32_PAIR, "y": {**F32_PAIR, "data_offsets": [12, 20]}}, b"\0" * 20, "4 unaccounted bytes before tensor y"),
    ({"x": F32_PAIR}, b"\0" * 20, "12 bytes follow the last tensor"),
])
def test_lying_headers_are_refused_with_the_reason(header, data, expected, tmp_path):
    assert expected in refused(write(tmp_path / "bad", header, data))
