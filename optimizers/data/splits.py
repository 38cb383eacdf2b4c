"""A prepared dataset.npz as train/validation tensors, and samples fitted to a model's input.

The split is a pure function of (labels, val_fraction, seed): the same dataset splits the same way in
every job, so accuracy before and after a recipe, or across runs, is measured on the same samples.
"""

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from optimizers.data.compat import FLOAT_DTYPES, TOKEN_DTYPE, fit_plan, token_ids_refusal
from optimizers.data.errors import DatasetError
from optimizers.data.text_arrays import is_text_dataset

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class DataSplits:
    train_x: torch.Tensor
    train_y: torch.Tensor | None  # int64 class ids; None when the dataset has no labels
    val_x: torch.Tensor
    val_y: torch.Tensor | None
    class_names: list[str] | None = None
    # A text dataset tokenized for the job's model (`optimizers.data.tokens`): how, for the report; else None.
    tokenized: dict[str, Any] | None = None
    # The dtype the job's model takes: what `fit_to_input` gives it, so code that trains or evaluates on the
    # splits (and knows only the input's shape) feeds token ids as ids and features as floats.
    input_dtype: str = "float32"

    @property
    def num_classes(self) -> int | None:
        return len(self.class_names) if self.class_names is not None else None


def load_splits(npz_path: str | os.PathLike, val_fraction: float = 0.2, seed: int = 0) -> DataSplits:
    """Train and validation sets from a prepared dataset.npz (stratified by class when it has labels)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive); got {val_fraction}")
    with np.load(npz_path, allow_pickle=False) as data:
        if is_text_dataset(data.files):
            raise DatasetError("the dataset holds texts, which only a model with its own tokenizer (a Hugging Face "
                               "folder) can read")
        # Token ids stay int64 (`fit_to_input` gives a float model float32 values); every other sample is float32.
        raw = data["x"]
        x = raw if raw.dtype == np.int64 else raw.astype(np.float32, copy=False)
        y = data["y"].astype(np.int64, copy=False) if "y" in data.files else None
        names = [str(name) for name in data["class_names"]] if "class_names" in data.files else None
    if len(x) < 2:
        raise ValueError(f"a dataset of {len(x)} sample(s) cannot be split; at least 2 are needed")
    return split_arrays(x, y, names if y is not None else None, val_fraction, seed)


def split_arrays(x: np.ndarray, y: np.ndarray | None, class_names: list[str] | None, val_fraction: float, seed: int,
                 tokenized: dict[str, Any] | None = None) -> DataSplits:
    """Samples (and labels) split by `split_indices` into tensors."""
    train, val = split_indices(len(x), y, val_fraction, seed)

    def pick(array: np.ndarray | None, indexes: np.ndarray) -> torch.Tensor | None:
        return None if array is None else torch.from_numpy(np.ascontiguousarray(array[indexes]))

    return DataSplits(pick(x, train), pick(y, train), pick(x, val), pick(y, val), class_names, tokenized)


def split_indices(samples: int, y: np.ndarray | None, val_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """(train, val) indexes: val sorted, train in a seeded shuffled order; both non-empty.

    Each class gives round(its size x val_fraction) samples to val (keeping one for train), so class balance
    is kept in both.
    """
    rng = np.random.default_rng(seed)
    groups = [np.arange(samples)] if y is None else [np.flatnonzero(y == label) for label in np.unique(y)]
    train, val = [], []
    for group in groups:
        shuffled = rng.permutation(group)
        # At least one of each class stays for training: a class the model never sees cannot be learnt.
        take = min(math.floor(len(shuffled) * val_fraction + 0.5), len(shuffled) - 1)
        val.append(shuffled[:take])
        train.append(shuffled[take:])
    train_all, val_all = np.concatenate(train), np.concatenate(val)
    if len(val_all) == 0:  # tiny datasets: every class rounded to zero
        train_all, val_all = train_all[1:], train_all[:1]
    return rng.permutation(train_all), np.sort(val_all)


def fit_to_input(x: torch.Tensor, input_shape: tuple[int, ...], dtype: str = "float32") -> torch.Tensor:
    """x [N, *sample] made into the model's per-sample input shape (see optimizers.data.compat for the rules).

    Token ids (int64 samples) for a model that takes int64 pass as they are, whatever their length; they are
    never cast to float, and float samples are never made into ids. Raises ValueError naming both shapes (or
    dtypes) when it cannot. Call it per batch: resizing a whole dataset at once can take far more memory than the
    dataset.
    """
    x = torch.as_tensor(x)
    if dtype not in FLOAT_DTYPES:
        sample_dtype = "float32" if x.is_floating_point() else TOKEN_DTYPE
        if x.dim() < 2:
            raise ValueError(f"expected a batch [N, ...] of token ids; got shape {list(x.shape)}")
        reason = token_ids_refusal(tuple(x.shape[1:]), input_shape, dtype, sample_dtype)
        if reason:
            raise ValueError(reason)
        return x.to(torch.int64)
    x = x.to(torch.float32)
    if x.dim() < 2:
        raise ValueError(f"expected a batch [N, ...] of samples; got shape {list(x.shape)}")
    for step in fit_plan(tuple(x.shape[1:]), input_shape):
        if step[0] == "add_channel":
            x = x.unsqueeze(1)
        elif step[0] == "repeat_channels":
            x = x.repeat(1, step[1], 1, 1)
        elif step[0] == "average_channels":
            x = x.mean(dim=1, keepdim=True)
        elif step[0] == "resize":
            # antialias: shrinking a big image without it aliases; growing is the same either way.
            x = F.interpolate(x, size=step[1:], mode="bilinear", align_corners=False, antialias=True)
        elif step[0] == "flatten":
            x = x.reshape(len(x), -1)
    return x.to(_TORCH_DTYPES[dtype])
