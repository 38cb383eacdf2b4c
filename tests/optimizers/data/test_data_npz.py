"""npz datasets: the normal form round trip, and every way an upload is refused (never by unpickling it)."""

import io
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from optimizers.data.errors import DatasetError
from optimizers.data.job import prepare_dataset
from optimizers.reporters import NullReporter


def prepare(tmp_path: Path, source: Path, **options) -> dict:
    spec = SimpleNamespace(dataset_kind="npz", dataset_source=str(source), dataset_options=options,
                           out_dir=str(tmp_path / "out"))
    return prepare_dataset(spec, NullReporter())


def saved(tmp_path: Path, **arrays) -> Path:
    path = tmp_path / "upload.npz"
    np.savez(path, **arrays)
    return path


def read_back(tmp_path: Path) -> dict:
    with np.load(tmp_path / "out" / "dataset.npz", allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def test_images_with_labels_and_class_names_round_trip(tmp_path):
    x = np.random.default_rng(0).random((12, 3, 5, 6))  # float64: stored as float32
    y = np.arange(12) % 3
    result = prepare(tmp_path, saved(tmp_path, x=x, y=y, class_names=np.array(["ant", "bee", "cat"])))
    assert result == {
        "samples": 12, "sample_shape": [3, 5, 6], "dtype": "float32", "has_labels": True,
        "classes": ["ant", "bee", "cat"], "num_classes": 3, "class_counts": [4, 4, 4], "kind": "npz",
        "files": ["dataset.npz"] + [f"preview_{i}.png" for i in range(8)], "notes": [],
        # The page writes each preview's class under it.
        "preview_labels": {f"preview_{i}.png": ["ant", "bee", "cat"][i % 3] for i in range(8)},
    }
    stored = read_back(tmp_path)
    assert stored["x"].dtype == np.float32 and np.allclose(stored["x"], x)
    assert stored["y"].dtype == np.int64 and (stored["y"] == y).all()
    assert stored["class_names"].tolist() == ["ant", "bee", "cat"]


def test_feature_vectors_without_labels_get_no_previews(tmp_path):
    result = prepare(tmp_path, saved(tmp_path, x=np.ones((4, 7), dtype=np.int32)))
    assert (result["sample_shape"], result["has_labels"], result["classes"]) == ([7], False, None)
    assert result["files"] == ["dataset.npz"]
    assert set(read_back(tmp_path)) == {"x"}


def test_channels_last_images_are_stored_channels_first(tmp_path):
    result = prepare(tmp_path, saved(tmp_path, x=np.zeros((3, 8, 8, 3), dtype=np.uint8)))
    assert result["sample_shape"] == [3, 8, 8]
    assert any("channels-last" in note for note in result["notes"])
    assert any("uint8" in note for note in result["notes"])


class Trap:
    """Unpickling this would create the marker file: the test proves nothing is unpickled."""

    marker: Path

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickled_object_array_is_refused_without_unpickling(tmp_path):
    trap = Trap()
    trap.marker = tmp_path / "unpickled"
    path = saved(tmp_path, x=np.array([trap, trap], dtype=object))
    with pytest.raises(DatasetError, match="pickled array.*never unpickles"):
        prepare(tmp_path, path)
    assert not trap.marker.exists()


def test_nan_and_infinity_are_refused_with_their_count(tmp_path):
    x = np.ones((5, 3))
    x[0, 0], x[1, 2], x[4, 1] = np.nan, np.inf, 1e300  # 1e300 overflows float32
    with pytest.raises(DatasetError, match=r"x has 3 value\(s\) that are NaN or infinite"):
        prepare(tmp_path, saved(tmp_path, x=x))


@pytest.mark.parametrize(("y", "message"), [
    (np.zeros(9, dtype=np.int64), r"one class id per sample: shape \[10\]; got \[9\]"),
    (np.array([0, 1, -1, 0, 1, 0, 1, 0, 1, 0]), "holds -1 at index 2: class ids must be 0 or more"),
    (np.full(10, 0.5), "holds 0.5 at index 0: class ids must be whole numbers"),
    (np.array(["cat"] * 10), "must hold integer class ids"),
])
def test_bad_labels_are_refused(tmp_path, y, message):
    with pytest.raises(DatasetError, match=message):
        prepare(tmp_path, saved(tmp_path, x=np.zeros((10, 2)), y=y))


def test_whole_float_labels_are_accepted_as_class_ids(tmp_path):
    result = prepare(tmp_path, saved(tmp_path, x=np.zeros((4, 2)), y=np.array([0.0, 2.0, 1.0, 2.0])))
    assert (result["classes"], result["class_counts"]) == (["0", "1", "2"], [1, 1, 2])


def test_class_names_must_cover_the_labels(tmp_path):
    path = saved(tmp_path, x=np.zeros((3, 2)), y=np.array([0, 1, 2]), class_names=np.array(["a", "b"]))
    with pytest.raises(DatasetError, match="class id 2 but class_names has 2 names"):
        prepare(tmp_path, path)


@pytest.mark.parametrize(("arrays", "message"), [
    ({"features": np.zeros((3, 2))}, r"no array named x \(found: features\)"),
    ({"x": np.zeros((1, 4))}, r"1 sample\(s\); at least 2"),
    ({"x": np.zeros(5)}, r"must be \[N, ...\] with 2 to 6 dimensions"),
    ({"x": np.zeros((3, 2), dtype=complex)}, "must hold numbers"),
])
def test_malformed_arrays_are_refused(tmp_path, arrays, message):
    with pytest.raises(DatasetError, match=message):
        prepare(tmp_path, saved(tmp_path, **arrays))


def npz_with_header(tmp_path: Path, shape: tuple[int, ...], data: bytes) -> Path:
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
    path = tmp_path / "lying.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", member.getvalue() + data)
    return path


def test_a_header_declaring_a_huge_array_is_refused_before_allocation(tmp_path):
    with pytest.raises(DatasetError, match=r"x has shape \[1000000000,1000\]"):
        prepare(tmp_path, npz_with_header(tmp_path, (10**9, 1000), b"\0" * 64))


def test_a_header_declaring_more_than_the_file_holds_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="truncated or corrupt.*4,000 bytes.*but it holds 64"):
        prepare(tmp_path, npz_with_header(tmp_path, (100, 10), b"\0" * 64))


def test_a_file_that_is_not_an_npz_is_refused(tmp_path):
    path = tmp_path / "upload.npz"
    path.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(DatasetError, match="not a readable zip archive"):
        prepare(tmp_path, path)


def test_integer_token_ids_are_kept_as_int64_with_a_preview_of_the_ids(tmp_path):
    ids = np.array([[101, 7592, 2088, 102, 0, 0], [101, 2023, 102, 0, 0, 0], [101, 1, 2, 3, 4, 102]], dtype=np.int32)
    result = prepare(tmp_path, saved(tmp_path, x=ids, y=np.array([0, 1, 0])))
    assert result["dtype"] == "int64" and result["sample_shape"] == [6] and result["files"] == ["dataset.npz"]
    assert result["preview_ids"] == ids.tolist()
    assert any("kept as int64 (token ids" in note for note in result["notes"])
    stored = read_back(tmp_path)
    assert stored["x"].dtype == np.int64 and (stored["x"] == ids).all()


@pytest.mark.parametrize("x", [
    np.array([[1, -2], [3, 4]], dtype=np.int64),  # negative: not token ids, so features
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4),  # 3-D: an image, not a row of ids
])
def test_other_integer_samples_stay_float32_features(tmp_path, x):
    result = prepare(tmp_path, saved(tmp_path, x=x))
    assert result["dtype"] == "float32" and "preview_ids" not in result
    assert read_back(tmp_path)["x"].dtype == np.float32
