"""Cheap look at an upload's first bytes: never a deserialization, only enough to refuse what is plainly no model.

The worker's sandbox decides for real; this spares users a queued job for a photo or a truncated archive.
"""
import struct
import zipfile

from django.core.exceptions import ValidationError

ARCHIVE, ONNX, SAFETENSORS = "archive", "onnx", "safetensors"
_NOT_A_MODEL = ("Not a model file Slimforge reads (a TorchScript or torch.export archive, an ONNX model, "
                "a safetensors state dict, or a zipped Hugging Face folder)")
_KNOWN_OTHERS = {
    b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"%PDF": "a PDF document",
    b"\x80\x02": "a Python pickle", b"\x80\x03": "a Python pickle", b"\x80\x04": "a Python pickle",
    b"\x80\x05": "a Python pickle",
}
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
# The names the formats above are saved under (torch.jit.save, torch.export.save, ONNX, safetensors). The server
# goes by the bytes; the upload page offers and accepts these names, so a wrong file is caught before it is sent.
MODEL_FILE_EXTENSIONS = (".pt", ".pth", ".jit", ".zip", ".pt2", ".onnx", ".safetensors")


def model_file_kind(upload) -> str:
    upload.seek(0)
    head = upload.read(9)
    upload.seek(0)
    # First: a safetensors header length is arbitrary bytes and can look like any magic below.
    if _looks_like_safetensors(head, upload.size):
        return SAFETENSORS
    for magic, what in _KNOWN_OTHERS.items():
        if head.startswith(magic):
            raise ValidationError({"file": f"{_NOT_A_MODEL}: this looks like {what}."})
    if head.startswith(b"PK"):
        is_zip = zipfile.is_zipfile(upload)
        upload.seek(0)
        if not is_zip:
            raise ValidationError({"file": f"{_NOT_A_MODEL}: the zip archive is truncated or corrupt "
                                           "(not a complete zip archive)."})
        return ARCHIVE
    if head[:1] == b"\x08":  # ONNX's ModelProto starts with its ir_version field
        return ONNX
    raise ValidationError({"file": f"{_NOT_A_MODEL}."})


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (header_length,) = struct.unpack("<Q", head[:8])
    return 2 <= header_length <= min(_MAX_SAFETENSORS_HEADER, size - 8) and head[8:9] == b"{"
