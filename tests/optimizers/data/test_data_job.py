"""The dataset job as the sandbox calls it: the bundled digits, options, progress and cancellation."""

import json
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from optimizers.data.job import prepare_dataset
from optimizers.data.options import parse_dataset_options
from optimizers.errors import Cancelled, ConfigError, SpecError
from optimizers.reporters import ListReporter, NullReporter


def spec(tmp_path, kind="digits", source=None, **options):
    return SimpleNamespace(dataset_kind=kind, dataset_source=source, dataset_options=options,
                           out_dir=str(tmp_path / "out"))


def test_digits_become_1797_images_of_1x8x8_in_ten_classes(tmp_path):
    report = ListReporter()
    result = prepare_dataset(spec(tmp_path), report)
    previews = [f"preview_{i}.png" for i in range(8)]
    assert result == {
        "samples": 1797, "sample_shape": [1, 8, 8], "dtype": "float32", "has_labels": True,
        "classes": [str(digit) for digit in range(10)], "num_classes": 10,
        "class_counts": [178, 182, 177, 183, 181, 182, 181, 179, 174, 180], "kind": "digits",
        "files": ["dataset.npz", *previews], "notes": [],
        "preview_labels": {name: str(digit) for digit, name in enumerate(previews)},  # one of each class first
    }
    json.dumps(result, allow_nan=False)  # the sandbox's final line must serialise
    with np.load(tmp_path / "out" / "dataset.npz", allow_pickle=False) as data:
        assert data["x"].dtype == np.float32 and data["x"].shape == (1797, 1, 8, 8)
        assert data["x"].min() == 0.0 and data["x"].max() == 1.0
        assert data["y"].dtype == np.int64 and sorted(set(data["y"].tolist())) == list(range(10))
    with Image.open(tmp_path / "out" / "preview_3.png") as preview:
        assert preview.size == (64, 64) and preview.mode == "L"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["dataset.npz", *previews]
    assert [e["name"] for e in report.events if e["kind"] == "stage"] == ["read", "write"]
    assert report.events[-1] == {"kind": "progress", "done": 100, "total": 100, "stage": "done"}


def test_previews_show_one_sample_per_class_first(tmp_path):
    prepare_dataset(spec(tmp_path), NullReporter())
    with np.load(tmp_path / "out" / "dataset.npz", allow_pickle=False) as data:
        first_of_class = [int(np.flatnonzero(data["y"] == digit)[0]) for digit in range(8)]
        for number, index in enumerate(first_of_class):
            with Image.open(tmp_path / "out" / f"preview_{number}.png") as preview:
                shrunk = np.asarray(preview)[::8, ::8]
            assert np.array_equal(shrunk, np.round(data["x"][index, 0] * 255).astype(np.uint8))


def test_a_cancelled_job_stops_before_reading(tmp_path):
    report = NullReporter()
    report.cancel_requested = True
    with pytest.raises(Cancelled):
        prepare_dataset(spec(tmp_path), report)
    assert not (tmp_path / "out").exists()


def test_a_missing_source_is_the_callers_bug(tmp_path):
    with pytest.raises(SpecError, match="dataset_source is not a file"):
        prepare_dataset(spec(tmp_path, "npz", str(tmp_path / "nowhere.npz")), NullReporter())


@pytest.mark.parametrize(("kind", "options", "field", "message"), [
    ("pictures", {}, "dataset_kind", "must be one of npz, csv, images, digits"),
    ("images", {"label_column": "y"}, "label_column", "not an option of images datasets .options: image_size"),
    ("csv", {"delimiter": "::"}, "delimiter", "must be one of"),
    ("images", {"image_size": 1000}, "image_size", "from 4 to 512 pixels"),
    ("images", {"image_size": [32]}, "image_size", "from 4 to 512 pixels"),
    ("digits", {"image_size": 8}, "image_size", r"options: none"),
])
def test_bad_options_are_config_errors_naming_the_option(kind, options, field, message):
    with pytest.raises(ConfigError, match=message) as raised:
        parse_dataset_options(kind, options)
    assert raised.value.field == field


@pytest.mark.parametrize(("given", "parsed"), [
    (32, [32, 32]), ("32x48", [32, 48]), ("24", [24, 24]), ([8, 16], [8, 16]),
])
def test_image_size_accepts_form_and_api_spellings(given, parsed):
    assert parse_dataset_options("images", {"image_size": given}) == {"image_size": parsed}


def test_the_web_side_modules_import_without_numpy_or_torch(run_python):
    code = ("import optimizers.data, optimizers.data.compat, optimizers.data.options, optimizers.data.limits, "
            "optimizers.data.errors, sys; print(sorted({m.split('.')[0] for m in sys.modules}))")
    finished: subprocess.CompletedProcess = run_python("-c", code)
    assert finished.returncode == 0, finished.stderr
    loaded = finished.stdout.strip().splitlines()[-1]
    assert "'optimizers'" in loaded
    assert all(f"'{heavy}'" not in loaded for heavy in ("torch", "numpy", "PIL", "sklearn", "django"))


def run_sandbox(run_python, tmp_path, **spec_fields):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps({"action": "dataset", "out_dir": str(tmp_path / "out"), **spec_fields}))
    finished = run_python("-m", "optimizers.job_child", str(spec_path))
    return finished, [json.loads(line) for line in finished.stdout.splitlines()]


def test_the_sandbox_child_runs_a_dataset_job(run_python, tmp_path):
    finished, records = run_sandbox(run_python, tmp_path, dataset_kind="digits")
    assert finished.returncode == 0, finished.stderr
    assert records[-1]["kind"] == "result" and records[-1]["result"]["samples"] == 1797
    assert (tmp_path / "out" / "dataset.npz").is_file()


def test_the_sandbox_child_reports_a_hostile_zip_as_a_dataset_error(run_python, tmp_path):
    source = tmp_path / "evil.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("../../evil/1.png", b"not really")
    finished, records = run_sandbox(run_python, tmp_path, dataset_kind="images", dataset_source=str(source))
    assert finished.returncode == 1
    assert records[-1]["error_type"] == "DatasetError"
    assert records[-1]["error"] == "the zip entry '../../evil/1.png' climbs out of its folder ('..'); refused"


def test_the_digits_are_scikit_learns_own_read_without_importing_it(tmp_path):
    from sklearn.datasets import load_digits

    script = ("import sys; from optimizers.data.job import load_digits_dataset; d = load_digits_dataset(); "
              "assert 'sklearn' not in sys.modules, 'scikit-learn was imported'; "
              "import numpy as np; np.savez(sys.argv[1], x=d.x, y=d.y)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "d.npz")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    expected = load_digits()
    with np.load(tmp_path / "d.npz") as data:
        assert np.array_equal(data["x"][:, 0] * 16.0, expected.images) and np.array_equal(data["y"], expected.target)
