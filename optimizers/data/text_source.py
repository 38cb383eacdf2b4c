"""Read a text dataset: a .txt (one text a line), a .jsonl (one JSON object a line) or a .csv (a text column).

Texts stay text here: a dataset is uploaded without a model, and each job tokenizes them with its own model's
tokenizer (`optimizers.data.tokens`). Labels, when there are any, are read like a CSV's (`class_ids_of`).
Every line is read with a bound on its length, so a file of one 100 MB "line" is refused, not loaded.
"""

import csv
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optimizers.data import limits
from optimizers.data.arrays import class_ids_of
from optimizers.data.errors import DatasetError
from optimizers.data.options import DEFAULT_TEXT_COLUMN
from optimizers.errors import first_line

_SNIFF_BYTES = 64 * 1024
_DEFAULT_LABEL = "label"


@dataclass
class LoadedTexts:
    texts: list[str]
    y: np.ndarray | None = None  # int64 class ids, as LoadedDataset's
    class_names: list[str] | None = None
    format: str = "txt"
    notes: list[str] = field(default_factory=list)


def read_texts(path: str | os.PathLike, options: dict[str, Any]) -> LoadedTexts:
    limits.check_file_size(path, limits.MAX_TEXT_BYTES, "text file")
    fmt = options.get("format") or _sniffed_format(path)
    _check_not_binary(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            if fmt == "csv":
                texts, labels = _csv_rows(file, options)
            else:
                lines = _lines(file)
                texts, labels = _jsonl_rows(lines, options) if fmt == "jsonl" else (_txt_rows(lines), None)
    except UnicodeDecodeError as error:
        raise DatasetError("the file is not UTF-8 text (it holds bytes no UTF-8 text has); save it as UTF-8") \
            from error
    if len(texts) < limits.MIN_SAMPLES:
        raise DatasetError(f"the file holds {len(texts)} text(s); at least {limits.MIN_SAMPLES} are needed")
    sequence_length = options.get("sequence_length", limits.DEFAULT_SEQUENCE_LENGTH)
    tokens = len(texts) * sequence_length
    if tokens > limits.MAX_TOKENS:
        raise DatasetError(f"{len(texts):,} texts of {sequence_length} tokens make {tokens:,} token ids; the limit "
                           f"is {limits.MAX_TOKENS:,}: use fewer texts or a shorter sequence_length")
    if labels is None:
        return LoadedTexts(texts, format=fmt)
    y, class_names, notes = class_ids_of(labels, f"the label {'column' if fmt == 'csv' else 'field'}")
    return LoadedTexts(texts, y, class_names, fmt, notes)


def _sniffed_format(path: str | os.PathLike) -> str:
    """No format given (an API upload without a known extension): a first object is JSON lines, else lines."""
    with open(path, "rb") as file:
        head = file.read(_SNIFF_BYTES).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if head.startswith(b"{") else "txt"


def _check_not_binary(path: str | os.PathLike) -> None:
    with open(path, "rb") as file:
        head = file.read(_SNIFF_BYTES)
    if b"\x00" in head:
        raise DatasetError("the file is not text: it holds NUL bytes, as binary files (or UTF-16 text) do; "
                           "a text dataset is UTF-8 text")


def _lines(file) -> Any:
    """(line number, line without its end) for every line, each read with a bound on its length."""
    number = 0
    while True:
        line = file.readline(limits.MAX_TEXT_CHARS + 2)  # room for "\r\n": a full-length text still fits
        if not line:
            return
        number += 1
        body = line.rstrip("\r\n")
        if len(body) > limits.MAX_TEXT_CHARS:
            raise DatasetError(f"line {number} is longer than {limits.MAX_TEXT_CHARS:,} characters, the limit for "
                               "one text (a text dataset holds one text a line)")
        _check_characters(body, f"line {number}")
        yield number, body


def _check_characters(text: str, where: str) -> None:
    if "\x00" in text:
        raise DatasetError(f"{where} holds a NUL character: the file is not plain text")


def _txt_rows(lines) -> list[str]:
    texts = []
    for number, line in lines:
        text = line.strip()
        if text:  # blank lines separate nothing here: they are skipped
            _count(texts, number)
            texts.append(text)
    return texts


def _jsonl_rows(lines, options: dict[str, Any]) -> tuple[list[str], list[str] | None]:
    text_key = options.get("text_column", DEFAULT_TEXT_COLUMN)
    label_key = options.get("label_column")
    texts, labels = [], []
    for number, line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"line {number} is not valid JSON: {first_line(error)}") from None
        if not isinstance(row, dict):
            raise DatasetError(f"line {number} is a JSON {type(row).__name__}; each line must be one JSON object "
                               f"such as {{\"{text_key}\": \"...\"}}")
        if not texts:  # the first row says whether the default label field is there
            label_key = label_key or (_DEFAULT_LABEL if _DEFAULT_LABEL in row else None)
        _count(texts, number)
        texts.append(_text(row.get(text_key), f"line {number}", f"field {text_key!r}", row))
        if label_key is not None:
            labels.append(_label(row, label_key, f"line {number}"))
    return texts, (labels if label_key is not None else None)


def _csv_rows(file, options: dict[str, Any]) -> tuple[list[str], list[str] | None]:
    csv.field_size_limit(limits.MAX_TEXT_CHARS)
    reader = csv.reader(file, delimiter=options.get("delimiter", ","), strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise DatasetError("the CSV is empty; it needs a header row of column names and rows of texts")
        columns = [cell.strip() for cell in header]
        text_name = options.get("text_column", DEFAULT_TEXT_COLUMN)
        if text_name not in columns:
            raise DatasetError(f"the CSV has no column named {text_name!r}; its columns: {', '.join(columns[:20])} "
                               "(name the text column with the text_column option)")
        label_name = options.get("label_column") or (_DEFAULT_LABEL if _DEFAULT_LABEL in columns else None)
        if label_name is not None and label_name not in columns:
            raise DatasetError(f"the CSV has no column named {label_name!r}; its columns: {', '.join(columns[:20])}")
        text_index = columns.index(text_name)
        label_index = columns.index(label_name) if label_name is not None else None
        texts, labels = [], []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            if len(row) != len(columns):
                raise DatasetError(f"CSV line {line} has {len(row)} values; the header has {len(columns)} columns")
            _count(texts, line)
            texts.append(_text(row[text_index], f"CSV line {line}", f"column {text_name!r}"))
            if label_index is not None:
                labels.append(_label({label_name: row[label_index]}, label_name, f"CSV line {line}"))
    except csv.Error as error:
        if "field larger than field limit" in str(error):
            raise DatasetError(f"CSV line {reader.line_num} holds a value longer than {limits.MAX_TEXT_CHARS:,} "
                               "characters, the limit for one text") from None
        raise DatasetError(f"the CSV is malformed near line {reader.line_num}: {error}") from None
    return texts, (labels if label_index is not None else None)


def _count(texts: list[str], line: int) -> None:
    if len(texts) >= limits.MAX_TEXTS:
        raise DatasetError(f"the file holds more than {limits.MAX_TEXTS:,} texts (at line {line}); "
                           f"the limit is {limits.MAX_TEXTS:,}")


def _text(value: Any, where: str, what: str, row: dict | None = None) -> str:
    if value is None and row is not None:
        fields = ", ".join(map(repr, list(row)[:10])) or "none"
        raise DatasetError(f"{where} has no {what} (its fields: {fields}); name the text field with the "
                           "text_column option")
    if not isinstance(value, str):
        raise DatasetError(f"{where}: the {what} must be a string; got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise DatasetError(f"{where} has an empty text in the {what}")
    if len(text) > limits.MAX_TEXT_CHARS:
        raise DatasetError(f"{where}: the text is {len(text):,} characters; the limit for one text is "
                           f"{limits.MAX_TEXT_CHARS:,}")
    _check_characters(text, where)
    return text


def _label(row: dict, key: str, where: str) -> str:
    if key not in row:
        raise DatasetError(f"{where} has no label field {key!r}, which other lines have")
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DatasetError(f"{where}: the label must be a string or a number; got {json.dumps(value)[:40]}")
    label = str(value).strip()
    if not label:
        raise DatasetError(f"{where} has an empty label")
    return label
