"""The dataset job: read an upload (or a bundled set), check it, write the normal form and previews.

Runs in the sandbox child for JobSpec action "dataset". Writes into spec.out_dir:
dataset.npz (x float32 [N, ...], y int64 [N] and class_names when labelled) and preview_0.png.. when
samples are images. Each file is written under a temporary name and renamed when complete.
"""

import os
from pathlib import Path
from typing import Any

import numpy as np

from optimizers.data.arrays import LoadedDataset
from optimizers.data.csv_source import read_csv
from optimizers.data.image_source import read_image_zip
from optimizers.data.npz_source import read_npz
from optimizers.data.options import parse_dataset_options
from optimizers.data.previews import write_previews
from optimizers.errors import SpecError
from optimizers.reporters import JobSteps, Reporter

DATASET_NAME = "dataset.npz"


def prepare_dataset(spec: Any, report: Reporter) -> dict[str, Any]:
    kind = spec.dataset_kind
    options = parse_dataset_options(kind, spec.dataset_options)
    if kind != "digits" and not (spec.dataset_source and os.path.isfile(spec.dataset_source)):
        raise SpecError(f"job spec dataset_source is not a file: {spec.dataset_source!r}")
    if not spec.out_dir:
        raise SpecError("job spec out_dir must be set for action dataset")
    steps = JobSteps(report, ["read", "write"])
    dataset = read_dataset(kind, spec.dataset_source, options, steps.begin("read"))
    for note in dataset.notes:
        report.log(note)
    steps.begin("write")
    out_dir = Path(spec.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [write_dataset(dataset, out_dir)]
    previews = write_previews(dataset.x, dataset.y, out_dir) if dataset.images else {}
    files += list(previews)
    steps.finish()
    return describe(dataset, kind, files, previews)


def read_dataset(kind: str, source: str | None, options: dict[str, Any], report: Reporter) -> LoadedDataset:
    if kind == "npz":
        return read_npz(source)
    if kind == "csv":
        return read_csv(source, options)
    if kind == "images":
        return read_image_zip(source, options, report)
    return load_digits_dataset()


def load_digits_dataset() -> LoadedDataset:
    """scikit-learn's bundled digits: 1797 images of 8x8, pixel values 0..16 scaled to [0, 1], 10 classes."""
    from sklearn.datasets import load_digits  # only this kind needs scikit-learn

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    return LoadedDataset(x, digits.target.astype(np.int64), [str(digit) for digit in range(10)], images=True)


def write_dataset(dataset: LoadedDataset, out_dir: Path) -> str:
    arrays = {"x": dataset.x}
    if dataset.y is not None:
        arrays["y"] = dataset.y
        arrays["class_names"] = np.array(dataset.class_names, dtype=str)  # a unicode array: loads without pickle
    partial = out_dir / f".partial-{DATASET_NAME}"
    with open(partial, "wb") as file:
        np.savez_compressed(file, **arrays)
    os.replace(partial, out_dir / DATASET_NAME)
    return DATASET_NAME


def describe(dataset: LoadedDataset, kind: str, files: list[str], previews: dict[str, int] | None = None
             ) -> dict[str, Any]:
    """The dataset's info; `previews` ({file name: sample index}) become each preview's class name, when labelled."""
    labelled = dataset.y is not None
    counts = np.bincount(dataset.y, minlength=len(dataset.class_names)).tolist() if labelled else None
    return {
        "samples": len(dataset.x),
        "sample_shape": list(dataset.x.shape[1:]),
        "dtype": "float32",
        "has_labels": labelled,
        "classes": dataset.class_names if labelled else None,
        "num_classes": len(dataset.class_names) if labelled else None,
        "class_counts": counts,
        "kind": kind,
        "files": files,
        "notes": dataset.notes,
        "preview_labels": {name: dataset.class_names[dataset.y[index]] for name, index in (previews or {}).items()}
        if labelled else {},
    }
