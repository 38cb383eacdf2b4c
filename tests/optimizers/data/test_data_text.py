"""Text datasets (.txt, .jsonl, .csv): read, checked and stored as texts; every bad file refused naming why."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from optimizers.data import limits
from optimizers.data.errors import DatasetError
from optimizers.data.job import prepare_dataset
from optimizers.data.options import parse_dataset_options, text_format_of
from optimizers.data.text_arrays import SEQUENCE_LENGTH, TEXT_BYTES, TEXT_OFFSETS, unpack_texts
from optimizers.errors import ConfigError
from optimizers.reporters import NullReporter


def prepare(tmp_path: Path, content: str | bytes, name: str = "texts.txt", **options) -> dict:
    source = tmp_path / name
    source.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    options.setdefault("format", text_format_of(name))
    spec = SimpleNamespace(dataset_kind="text", dataset_source=str(source), out_dir=str(tmp_path / "out"),
                           dataset_options=parse_dataset_options("text", options))
    return prepare_dataset(spec, NullReporter())


def stored(tmp_path: Path) -> dict:
    with np.load(tmp_path / "out" / "dataset.npz", allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["texts"] = unpack_texts(arrays.pop(TEXT_BYTES), arrays.pop(TEXT_OFFSETS))
    return arrays


def test_a_txt_is_one_text_a_line_blank_lines_skipped(tmp_path):
    info = prepare(tmp_path, "\ufeffFirst line\r\n\n   \nsecond — ünïcode ✓\nthird\n\n")
    assert stored(tmp_path)["texts"] == ["First line", "second — ünïcode ✓", "third"]
    assert info["samples"] == 3 and info["dtype"] == "text" and info["format"] == "txt"
    assert info["sample_shape"] is None and info["has_labels"] is False and info["sequence_length"] == 128
    assert info["preview_texts"][1] == {"text": "second — ünïcode ✓", "label": None}
    assert int(stored(tmp_path)[SEQUENCE_LENGTH]) == 128
    json.dumps(info, allow_nan=False)


def test_jsonl_texts_with_named_labels(tmp_path):
    rows = [{"text": "good film", "label": "pos"}, {"text": "bad film", "label": "neg"},
            {"text": "fine <b>film</b>", "label": "pos", "extra": [1, 2]}]
    info = prepare(tmp_path, "\n".join(json.dumps(row) for row in rows) + "\n", "reviews.jsonl",
                   sequence_length="64")
    arrays = stored(tmp_path)
    assert arrays["texts"] == ["good film", "bad film", "fine <b>film</b>"]
    assert arrays["y"].tolist() == [1, 0, 1] and arrays["class_names"].tolist() == ["neg", "pos"]
    assert info["classes"] == ["neg", "pos"] and info["class_counts"] == [1, 2] and info["sequence_length"] == 64
    assert info["preview_texts"][2] == {"text": "fine <b>film</b>", "label": "pos"}  # the page escapes it
    assert "labels numbered in sorted order: neg=0, pos=1" in info["notes"]


def test_a_csv_text_column_with_other_names_and_long_texts_previewed_short(tmp_path):
    long = "word " * 200
    content = f'id;body;stars\n1;"a text; with the delimiter";5\n2;"{long}";1\n3;plain;5\n'
    info = prepare(tmp_path, content, "data.csv", delimiter=";", text_column="body", label_column="stars")
    arrays = stored(tmp_path)
    assert arrays["texts"] == ["a text; with the delimiter", long.strip(), "plain"]
    assert arrays["y"].tolist() == [5, 1, 5] and info["num_classes"] == 6  # whole numbers are class ids as they are
    preview = info["preview_texts"][1]["text"]
    assert len(preview) == limits.PREVIEW_TEXT_CHARS and preview.endswith("…")
    assert info["longest_text_chars"] == len(long.strip())


def test_a_csv_with_a_text_column_and_no_labels(tmp_path):
    info = prepare(tmp_path, "text,source\nhello there,web\ngeneral kenobi,film\n", "d.csv")
    assert stored(tmp_path)["texts"] == ["hello there", "general kenobi"] and not info["has_labels"]


@pytest.mark.parametrize(("name", "content", "options", "problem"), [
    ("bin.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), {}, "not text: it holds NUL bytes"),
    ("latin.txt", "caf\xe9\nna\xefve\n".encode("latin-1"), {}, "not UTF-8 text"),
    ("one.txt", "only one\n\n", {}, "holds 1 text(s); at least 2"),
    ("d.csv", "title,label\nx,1\ny,0\n", {}, "no column named 'text'; its columns: title, label"),
    ("d.csv", "text,label\nx,1\ny,0\n", {"text_column": "body"}, "no column named 'body'"),
    ("d.csv", "text,label\nx,1\n,0\n", {}, "CSV line 3 has an empty text in the column 'text'"),
    ("d.csv", "text,label\nx,1\ny\n", {}, "CSV line 3 has 1 values; the header has 2 columns"),
    ("d.csv", "text,label\nx,1\ny,0\n", {"label_column": "stars"}, "no column named 'stars'"),
    ("d.jsonl", '{"text": "a"}\n{"text": "b"\n', {}, "line 2 is not valid JSON"),
    ("d.jsonl", '{"text": "a"}\n\n["b"]\n', {}, "line 3 is a JSON list; each line must be one JSON object"),
    ("d.jsonl", '{"text": "a"}\n{"body": "b"}\n', {}, "line 2 has no field 'text' (its fields: 'body')"),
    ("d.jsonl", '{"text": "a"}\n{"text": 7}\n', {}, "line 2: the field 'text' must be a string; got int"),
    ("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n', {}, "line 2 has no label field 'label'"),
    ("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": null}\n', {}, "the label must be a string or a "
                                                                                 "number; got null"),
    ("d.jsonl", '{"text": "a"}\n{"text": "   "}\n', {}, "line 2 has an empty text"),
])
def test_bad_text_files_are_refused_naming_the_problem(tmp_path, name, content, options, problem):
    with pytest.raises(DatasetError) as refused:
        prepare(tmp_path, content, name, **options)
    assert problem in str(refused.value)
    assert not (tmp_path / "out" / "dataset.npz").exists()


def test_a_10_mb_single_line_is_refused_without_being_read_whole(tmp_path):
    with pytest.raises(DatasetError, match=r"line 1 is longer than 100,000 characters, the limit for one text"):
        prepare(tmp_path, "x" * (10 * 1024 * 1024))
    long_field = "text\n" + "y" * (limits.MAX_TEXT_CHARS + 1) + "\nshort\n"
    with pytest.raises(DatasetError, match="CSV line .* holds a value longer than 100,000 characters"):
        prepare(tmp_path, long_field, "d.csv")


def test_counts_past_the_limits_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_TEXTS", 3)
    with pytest.raises(DatasetError, match="more than 3 texts"):
        prepare(tmp_path, "a\nb\nc\nd\n")
    monkeypatch.setattr(limits, "MAX_CLASSES", 2)
    with pytest.raises(DatasetError, match="the label field has 3 classes; the limit is 2"):
        prepare(tmp_path, "".join(json.dumps({"text": t, "label": t}) + "\n" for t in "abc"), "d.jsonl")
    monkeypatch.setattr(limits, "MAX_TOKENS", 100)
    with pytest.raises(DatasetError, match="3 texts of 64 tokens make 192 token ids; the limit is 100"):
        prepare(tmp_path, "a\nb\nc\n", sequence_length=64)
    monkeypatch.setattr(limits, "MAX_TEXT_BYTES", 10)
    with pytest.raises(DatasetError, match="the text file is 12 bytes; the limit is 10 bytes"):
        prepare(tmp_path, "abcdef\nghij\n")


def test_text_options_are_checked_before_a_job_is_queued():
    assert parse_dataset_options("text", {"sequence_length": 4096, "text_column": " body "}) == {
        "sequence_length": 4096, "text_column": "body"}
    for options, field in (({"sequence_length": 7}, "sequence_length"), ({"sequence_length": 4097}, "sequence_length"),
                           ({"sequence_length": True}, "sequence_length"), ({"format": "parquet"}, "format"),
                           ({"text_column": ""}, "text_column"), ({"image_size": 32}, "image_size")):
        with pytest.raises(ConfigError) as refused:
            parse_dataset_options("text", options)
        assert refused.value.field == field
    assert (text_format_of("a.JSONL"), text_format_of("b.csv"), text_format_of("c.txt")) == ("jsonl", "csv", "txt")
    assert text_format_of("upload") is None and text_format_of("x.parquet") is None


def test_a_file_without_a_format_is_read_as_json_lines_when_it_starts_with_an_object(tmp_path):
    source = tmp_path / "upload"
    source.write_text('{"text": "a"}\n{"text": "b"}\n')
    spec = SimpleNamespace(dataset_kind="text", dataset_source=str(source), out_dir=str(tmp_path / "out"),
                           dataset_options={})
    assert prepare_dataset(spec, NullReporter())["format"] == "jsonl"
    assert stored(tmp_path)["texts"] == ["a", "b"]
