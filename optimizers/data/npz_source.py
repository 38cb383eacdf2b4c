"""Read a user's .npz: x (required), y and class_names (optional). Never unpickles.

Each .npy header is read and checked before numpy allocates anything: a header may declare a shape
far larger than the bytes behind it, or an object dtype (a pickle).
"""

import math
import os
import zipfile
import zlib

import numpy as np

from optimizers.data import limits
from optimizers.data.arrays import (
    LoadedDataset,
    channels_first,
    checked_class_names,
    checked_features,
    checked_labels,
    looks_like_images,
    token_ids_or_none,
)
from optimizers.data.errors import DatasetError
from optimizers.data.safe_zip import check_declared_sizes, open_archive
from optimizers.errors import first_line
from optimizers.shapes import format_shape

KNOWN_ARRAYS = ("x", "y", "class_names")
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def read_npz(path: str | os.PathLike) -> LoadedDataset:
    with open_archive(path, ".npz file") as archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()
                   if info.filename.endswith(".npy")}
        if "x" not in members:
            found = ", ".join(sorted(members)[:10]) or "nothing"
            raise DatasetError(f"the .npz has no array named x (found: {found}); "
                               "save it with numpy.savez(path, x=samples, y=labels)")
        wanted = [members[name] for name in KNOWN_ARRAYS if name in members]
        check_declared_sizes(wanted, limits.MAX_UNCOMPRESSED_BYTES, ratio_check=False)
        arrays = {name: _read_array(archive, members[name], name) for name in KNOWN_ARRAYS if name in members}
    notes = []
    ignored = sorted(set(members) - set(KNOWN_ARRAYS))
    if ignored:
        notes.append(f"ignored arrays: {', '.join(ignored[:10])} (only x, y and class_names are read)")
    return _normalized(arrays, notes)


def _normalized(arrays: dict[str, np.ndarray], notes: list[str]) -> LoadedDataset:
    raw_x = arrays["x"]
    if raw_x.dtype == np.uint8:
        notes.append("x is uint8: values are kept as they are (0..255), not scaled to [0, 1]")
    x = token_ids_or_none(raw_x)
    if x is not None:
        notes.append(f"x holds {raw_x.dtype} integers 0 or more, [N, L]: kept as int64 (token ids for a model "
                     "that takes int64; a float model gets them as float32 values)")
    else:
        x, layout_note = channels_first(raw_x)
        notes += [layout_note] if layout_note else []
        x = checked_features(x)
    y, class_names = None, None
    names = checked_class_names(arrays["class_names"]) if "class_names" in arrays else None
    if "y" in arrays:
        y, class_names = checked_labels(arrays["y"], len(x), names)
    elif names is not None:
        notes.append("class_names ignored: there is no y")
    return LoadedDataset(x, y, class_names, images=looks_like_images(x.shape[1:]), notes=notes)


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.ndarray:
    try:
        with archive.open(info) as stream:
            version = np.lib.format.read_magic(stream)
            if version not in _HEADER_READERS:
                raise DatasetError(f"{name}.npy uses .npy format version {version}; save it with numpy.savez")
            shape, _, dtype = _HEADER_READERS[version](stream)
            header_bytes = stream.tell()
        _check_header(name, shape, dtype, info.file_size - header_bytes)
        with archive.open(info) as stream:
            return np.lib.format.read_array(stream, allow_pickle=False)
    except DatasetError:
        raise
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as error:
        raise DatasetError(f"{name}.npy in the .npz is corrupt: {first_line(error)}") from error


def _check_header(name: str, shape: tuple[int, ...], dtype: np.dtype, data_bytes: int) -> None:
    if dtype.hasobject:
        raise DatasetError(f"{name}.npy holds Python objects (a pickled array); Slimforge never unpickles "
                           "uploads: save numbers (and class_names as strings)")
    count = math.prod(shape)
    if count > limits.MAX_ELEMENTS:
        raise DatasetError(f"{name} has shape {format_shape(shape)} ({count:,} values); "
                           f"the limit is {limits.MAX_ELEMENTS:,}")
    if count * dtype.itemsize != data_bytes:
        raise DatasetError(f"{name}.npy is truncated or corrupt: its header declares {format_shape(shape)} "
                           f"{dtype} ({count * dtype.itemsize:,} bytes) but it holds {data_bytes:,}")
