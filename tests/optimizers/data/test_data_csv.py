"""CSV datasets: numeric features plus a label column; refusals name the line and column."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from optimizers.data import limits
from optimizers.data.errors import DatasetError
from optimizers.data.job import prepare_dataset
from optimizers.reporters import NullReporter


def prepare(tmp_path: Path, text: str | bytes, **options) -> dict:
    source = tmp_path / "upload.csv"
    source.write_bytes(text.encode() if isinstance(text, str) else text)
    spec = SimpleNamespace(dataset_kind="csv", dataset_source=str(source), dataset_options=options,
                           out_dir=str(tmp_path / "out"))
    return prepare_dataset(spec, NullReporter())


def stored(tmp_path: Path) -> dict:
    with np.load(tmp_path / "out" / "dataset.npz", allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def test_string_labels_become_class_ids_in_sorted_order(tmp_path):
    result = prepare(tmp_path, "width,height,label\n1,2,dog\n3,4.5,cat\n5,6,dog\n7,8,bird\n")
    assert result["classes"] == ["bird", "cat", "dog"]
    assert (result["samples"], result["sample_shape"], result["class_counts"]) == (4, [2], [1, 1, 2])
    assert result["files"] == ["dataset.npz"]  # feature vectors: no previews
    assert result["notes"] == ["labels numbered in sorted order: bird=0, cat=1, dog=2"]
    data = stored(tmp_path)
    assert data["y"].tolist() == [2, 1, 2, 0]
    assert data["x"].tolist() == [[1, 2], [3, 4.5], [5, 6], [7, 8]]
    assert data["class_names"].tolist() == ["bird", "cat", "dog"]


def test_whole_number_labels_stay_the_class_ids_they_are(tmp_path):
    result = prepare(tmp_path, "label,a\n2,1\n0,1\n2.0,1\n")
    assert result["classes"] == ["0", "1", "2"]
    assert stored(tmp_path)["y"].tolist() == [2, 0, 2]


def test_label_column_and_delimiter_options(tmp_path):
    result = prepare(tmp_path, "a;species;b\n1;x;2\n3;y;4\n\n", label_column="species", delimiter=";")
    assert (result["classes"], result["sample_shape"]) == (["x", "y"], [2])
    assert stored(tmp_path)["x"].tolist() == [[1, 2], [3, 4]]


def test_without_a_label_column_there_are_no_labels(tmp_path):
    result = prepare(tmp_path, "a,b\n1,2\n3,4\n")
    assert (result["has_labels"], result["classes"], result["num_classes"]) == (False, None, None)
    assert set(stored(tmp_path)) == {"x"}


def test_a_label_column_asked_for_by_name_must_exist(tmp_path):
    with pytest.raises(DatasetError, match="no column named 'target'; its columns: a, b"):
        prepare(tmp_path, "a,b\n1,2\n3,4\n", label_column="target")


@pytest.mark.parametrize(("text", "message"), [
    ("a,b,label\n1,2,x\n3,oops,y\n", "CSV line 3, column 'b': 'oops' is not a number"),
    ("a,b\n1,2\n3,nan\n", "CSV line 3, column 'b': 'nan' is not a finite number"),
    ("a,b\n1,2\n3\n", "CSV line 3 has 1 values; the header has 2 columns"),
    ("1,2\n3,4\n", "first row of the CSV must be a header"),
    ("a,,c\n1,2,3\n", "column 2 of the CSV header has no name"),
    ("a,a\n1,2\n3,4\n", "more than once: a"),
    ("a,label\n1,x\n2, \n", "CSV line 3 has an empty label"),
    ("", "the CSV is empty"),
    ("a,b\n1,2\n", r"1 sample\(s\); at least 2"),
    ("label\nx\ny\n", "only the label column"),
    ('a,b\n1,"2\n', "malformed near line"),
    (b"a,b\n1,2\n\xff\xfe,3\n", "not UTF-8 text"),
])
def test_malformed_csv_is_refused_naming_the_problem(tmp_path, text, message):
    with pytest.raises(DatasetError, match=message):
        prepare(tmp_path, text)


def test_row_and_size_limits(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_CSV_ROWS", 2)
    with pytest.raises(DatasetError, match="more than 2 rows"):
        prepare(tmp_path, "a,b\n1,2\n3,4\n5,6\n")
    monkeypatch.setattr(limits, "MAX_CSV_BYTES", 10)
    with pytest.raises(DatasetError, match="the CSV file is 12 bytes; the limit is 10 bytes"):
        prepare(tmp_path, "a,b\n1,2\n3,4\n")


def test_too_many_classes_means_the_wrong_column(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_CLASSES", 2)
    with pytest.raises(DatasetError, match="3 classes; the limit is 2 .is it really a label column"):
        prepare(tmp_path, "a,label\n1,x\n2,y\n3,z\n")
