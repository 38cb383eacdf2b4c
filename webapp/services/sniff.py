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


_TEXT_HEAD_BYTES = 64 * 1024
_BINARY_MAGIC = {**_KNOWN_OTHERS, b"PK": "a zip archive", b"\x1f\x8b": "a gzip archive", b"\x93NUMPY": "a NumPy array",
                 b"\x7fELF": "a program"}


def text_file_check(upload) -> None:
    """Refuse an upload for a text dataset that is plainly not UTF-8 text, from its first 64 KiB.

    The worker reads the whole file (and says which line is wrong); this spares a queued job for a photo or a zip.
    """
    upload.seek(0)
    head = upload.read(_TEXT_HEAD_BYTES)
    upload.seek(0)
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise ValidationError({"file": f"Not a text file: this looks like {what}. A text dataset is a .txt, "
                                           ".jsonl or .csv of UTF-8 text."})
    if b"\x00" in head:
        raise ValidationError({"file": "Not a text file: it holds NUL bytes, as binary files (and UTF-16 text) do. "
                                       "A text dataset is UTF-8 text."})
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        cut_short = error.reason == "unexpected end of data" and len(head) == _TEXT_HEAD_BYTES
        if not cut_short:  # a character cut in two at the end of the sample is not the file's fault
            raise ValidationError({"file": f"Not UTF-8 text: byte {head[error.start]:#04x} at offset {error.start} is "
                                           "not part of any UTF-8 character. Save the file as UTF-8."}) from None
