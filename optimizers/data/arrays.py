"""The normal form every source is read into, and the checks every source shares."""

import re
from dataclasses import dataclass, field

import numpy as np

from optimizers.data import limits
from optimizers.data.errors import DatasetError
from optimizers.shapes import MAX_DIMS, format_shape

_CLASS_ID = re.compile(r"\s*\+?[0-9]+(\.0*)?\s*")


@dataclass
class LoadedDataset:
    x: np.ndarray  # float32 [N, ...], or int64 [N, L] token ids (`token_ids_or_none`)
    y: np.ndarray | None = None  # int64 [N], class ids 0..len(class_names)-1
    class_names: list[str] | None = None
    images: bool = False  # samples are pictures ([C, H, W] or [H, W]): previews are written
    notes: list[str] = field(default_factory=list)


def checked_features(x: np.ndarray, what: str = "x") -> np.ndarray:
    """x as float32 [N, ...], or DatasetError: numeric, N >= 2, at least one value per sample, all finite."""
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"{what} must hold numbers; it holds {x.dtype} values")
    if x.ndim < 2 or x.ndim > MAX_DIMS:
        raise DatasetError(f"{what} must be [N, ...] with 2 to {MAX_DIMS} dimensions (N samples first); "
                           f"got shape {format_shape(x.shape)}")
    if len(x) < limits.MIN_SAMPLES:
        raise DatasetError(f"{what} has {len(x)} sample(s); at least {limits.MIN_SAMPLES} are needed")
    if x.size > limits.MAX_ELEMENTS:
        raise DatasetError(f"{what} holds {x.size:,} values; the limit is {limits.MAX_ELEMENTS:,}")
    if x.size == 0:
        raise DatasetError(f"{what} has shape {format_shape(x.shape)}: its samples hold no values")
    with np.errstate(over="ignore"):  # overflow is counted below, not warned about
        as_float = x.astype(np.float32, copy=False)
    bad = as_float.size - int(np.count_nonzero(np.isfinite(as_float)))
    if bad:
        # float64 values past float32's range become infinite here, so they are counted too.
        raise DatasetError(f"{what} has {bad:,} value(s) that are NaN or infinite (or too large for float32)")
    return np.ascontiguousarray(as_float)


def token_ids_or_none(x: np.ndarray) -> np.ndarray | None:
    """Integers [N, L], all 0 or more, as int64 token ids; None for anything else (features, images).

    Kept as integers, token ids feed a model whose input is int64 as they are; a float model gets them as float32
    values, as it got integer features before (`optimizers.data.splits.fit_to_input`).
    """
    if x.dtype.kind not in "iu" or x.ndim != 2 or x.size == 0 or len(x) < limits.MIN_SAMPLES:
        return None
    if x.size > limits.MAX_ELEMENTS or int(x.min()) < 0 or int(x.max()) > np.iinfo(np.int64).max:
        return None  # checked_features says what is wrong with a too-big array; negatives are not ids
    return np.ascontiguousarray(x.astype(np.int64, copy=False))


def checked_labels(y: np.ndarray, samples: int, class_names: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """y as int64 class ids 0..K-1 and the K class names ("0".."K-1" when none are given), or DatasetError."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # a column vector is a common way to save labels
    if y.ndim != 1 or len(y) != samples:
        raise DatasetError(f"y must be one class id per sample: shape [{samples}]; got {format_shape(y.shape)}")
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            index = int(np.flatnonzero(~whole)[0])
            raise DatasetError(f"y holds {y[index].item()!r} at index {index}: class ids must be whole numbers 0..K-1")
    elif y.dtype.kind not in "iu":
        raise DatasetError(f"y must hold integer class ids 0..K-1; it holds {y.dtype} values")
    if y.min() < 0:
        index = int(np.argmin(y))
        raise DatasetError(f"y holds {y[index].item()} at index {index}: class ids must be 0 or more")
    count = int(y.max()) + 1
    if class_names is not None:
        if len(class_names) < count:
            raise DatasetError(f"y uses class id {count - 1} but class_names has {len(class_names)} names")
        count = len(class_names)
    if count > limits.MAX_CLASSES:
        raise DatasetError(f"there are {count:,} classes; the limit is {limits.MAX_CLASSES:,}")
    return y.astype(np.int64), class_names or [str(index) for index in range(count)]


def checked_class_names(names: np.ndarray) -> list[str]:
    if names.dtype.kind != "U" or names.ndim != 1:
        raise DatasetError(f"class_names must be a 1-D array of strings; got {names.dtype} of shape "
                           f"{format_shape(names.shape)}")
    listed = [str(name) for name in names]
    if any(not name.strip() for name in listed) or len(set(listed)) != len(listed):
        raise DatasetError("class_names must be distinct, non-empty names")
    return listed


def looks_like_images(sample_shape: tuple[int, ...]) -> bool:
    """[C, H, W] with 1 or 3 channels, or [H, W]: worth a preview."""
    if len(sample_shape) == 3:
        return sample_shape[0] in (1, 3) and min(sample_shape[1:]) >= 2
    return len(sample_shape) == 2 and min(sample_shape) >= 2


def channels_first(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """[N, H, W, C] images (as PIL and TensorFlow keep them) turned to [N, C, H, W], with a note saying so."""
    if x.ndim == 4 and x.shape[3] in (1, 3) and x.shape[1] not in (1, 3):
        note = f"x looked channels-last {format_shape(x.shape[1:])}; stored as [C, H, W]"
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), note
    return x, None


def class_ids_of(labels: list[str], what: str) -> tuple[np.ndarray, list[str], list[str]]:
    """Labels read as text (a CSV column, a JSON field) as (int64 class ids, class names, notes).

    Labels that are all whole numbers are class ids as they stand ("0".."K-1"); any other labels are names,
    numbered in sorted order (a note says how). `what` names the labels' source in errors.
    """
    if all(_CLASS_ID.fullmatch(label) for label in labels):
        ids = np.array([int(float(label)) for label in labels], dtype=np.int64)
        count = int(ids.max()) + 1
        _check_class_count(count, what)
        return ids, [str(index) for index in range(count)], []
    names = sorted(set(labels))
    _check_class_count(len(names), what)
    number = {name: index for index, name in enumerate(names)}
    shown = ", ".join(f"{name}={number[name]}" for name in names[:10]) + (", ..." if len(names) > 10 else "")
    ids = np.array([number[label] for label in labels], dtype=np.int64)
    return ids, names, [f"labels numbered in sorted order: {shown}"]


def _check_class_count(count: int, what: str) -> None:
    if count > limits.MAX_CLASSES:
        raise DatasetError(f"{what} has {count:,} classes; the limit is {limits.MAX_CLASSES:,} "
                           "(is it really a label column?)")
