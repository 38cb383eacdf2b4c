"""How a text dataset's texts are kept in dataset.npz: UTF-8 bytes end to end, and where each text starts.

A numpy unicode array would be simpler, but it is fixed-width: every text takes as much memory as the
longest, four bytes a character, so one long review among a million tweets would need gigabytes. The bytes and
their offsets (uint8 and int64 arrays) take what the texts take, and load like any array: never a pickle.
"""

import numpy as np

TEXT_BYTES = "text_utf8"  # uint8: every text's UTF-8 bytes, one after another
TEXT_OFFSETS = "text_offsets"  # int64 [N + 1]: text i is TEXT_BYTES[offsets[i]:offsets[i + 1]]
SEQUENCE_LENGTH = "sequence_length"  # int64 scalar: the tokens a row (or block) gets when a job tokenizes


def pack_texts(texts: list[str]) -> dict[str, np.ndarray]:
    encoded = [text.encode("utf-8") for text in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(item) for item in encoded], out=offsets[1:])
    return {TEXT_BYTES: np.frombuffer(b"".join(encoded), dtype=np.uint8), TEXT_OFFSETS: offsets}


def unpack_texts(text_bytes: np.ndarray, offsets: np.ndarray) -> list[str]:
    """The texts back, or ValueError when the arrays do not describe texts (a file that is not ours)."""
    if text_bytes.dtype != np.uint8 or offsets.dtype != np.int64 or text_bytes.ndim != 1 or offsets.ndim != 1:
        raise ValueError("the text arrays of dataset.npz have the wrong types")
    if len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(text_bytes) or (np.diff(offsets) < 0).any():
        raise ValueError("the text offsets of dataset.npz do not match its bytes")
    raw, bounds = text_bytes.tobytes(), offsets.tolist()
    return [raw[start:end].decode("utf-8") for start, end in zip(bounds[:-1], bounds[1:], strict=True)]


def is_text_dataset(names: list[str]) -> bool:
    """Whether a dataset.npz (by its array names) holds texts rather than samples."""
    return TEXT_BYTES in names and TEXT_OFFSETS in names
