"""Read a CSV of numeric feature columns and an optional label column (header row required).

Labels that are all whole numbers are class ids as they stand ("0".."K-1"); any other labels are names,
numbered in sorted order. Rows are parsed in blocks into float32 so memory stays near the array's size.
"""

import csv
import math
import os
from typing import Any

import numpy as np

from optimizers.data import limits
from optimizers.data.arrays import LoadedDataset, checked_features, class_ids_of
from optimizers.data.errors import DatasetError

_BLOCK_ROWS = 4096


def read_csv(path: str | os.PathLike, options: dict[str, Any]) -> LoadedDataset:
    limits.check_file_size(path, limits.MAX_CSV_BYTES, "CSV file")
    label_option = options.get("label_column")
    csv.field_size_limit(limits.MAX_CSV_FIELD_CHARS)
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file, delimiter=options.get("delimiter", ","), strict=True)
            columns = _header(next(reader, None))
            label_index = _label_index(columns, label_option)
            x, labels = _rows(reader, columns, label_index)
    except UnicodeDecodeError as error:
        raise DatasetError(f"the CSV is not UTF-8 text (near line {reader.line_num + 1})") from error
    except csv.Error as error:
        raise DatasetError(f"the CSV is malformed near line {reader.line_num}: {error}") from error
    x = checked_features(x, what="the CSV")
    if label_index is None:
        return LoadedDataset(x, notes=[f"no column named {'label'!r}: the dataset has no labels"])
    y, class_names, notes = class_ids_of(labels, "the label column")
    return LoadedDataset(x, y, class_names, notes=notes)


def _header(row: list[str] | None) -> list[str]:
    if not row:
        raise DatasetError("the CSV is empty; it needs a header row of column names and data rows")
    columns = [cell.strip() for cell in row]
    if all(_is_number(cell) for cell in columns):
        raise DatasetError("the first row of the CSV must be a header of column names; it holds numbers")
    if len(columns) > limits.MAX_CSV_COLUMNS:
        raise DatasetError(f"the CSV has {len(columns):,} columns; the limit is {limits.MAX_CSV_COLUMNS:,}")
    for position, name in enumerate(columns, start=1):
        if not name:
            raise DatasetError(f"column {position} of the CSV header has no name")
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        raise DatasetError(f"the CSV header names these columns more than once: {', '.join(duplicates[:5])}")
    return columns


def _label_index(columns: list[str], label_option: str | None) -> int | None:
    name = label_option or "label"
    if name in columns:
        if len(columns) == 1:
            raise DatasetError(f"the CSV has only the label column {name!r}; it needs feature columns too")
        return columns.index(name)
    if label_option is not None:  # asked for by name: a typo must not silently drop the labels
        raise DatasetError(f"the CSV has no column named {name!r}; its columns: {', '.join(columns[:20])}")
    return None


def _rows(reader, columns: list[str], label_index: int | None) -> tuple[np.ndarray, list[str]]:
    features = [index for index in range(len(columns)) if index != label_index]
    max_rows = min(limits.MAX_CSV_ROWS, limits.MAX_ELEMENTS // len(features))
    blocks, block, labels, rows = [], [], [], 0
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank lines, often at the end
        line = reader.line_num
        if len(row) != len(columns):
            raise DatasetError(f"CSV line {line} has {len(row)} values; the header has {len(columns)} columns")
        rows += 1
        if rows > max_rows:
            raise DatasetError(f"the CSV has more than {max_rows:,} rows (the limit for {len(features)} features)")
        block.append([_number(row[index], line, columns[index]) for index in features])
        if label_index is not None:
            labels.append(_label(row[label_index], line))
        if len(block) == _BLOCK_ROWS:
            blocks.append(np.array(block, dtype=np.float32))
            block = []
    blocks.append(np.array(block, dtype=np.float32).reshape(-1, len(features)))
    return np.concatenate(blocks), labels


def _number(text: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"CSV line {line}, column {column!r}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise DatasetError(f"CSV line {line}, column {column!r}: {text[:40]!r} is not a finite number")
    return value


def _label(text: str, line: int) -> str:
    label = text.strip()
    if not label:
        raise DatasetError(f"CSV line {line} has an empty label")
    return label


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
