"""The dataset job: read an upload (or a bundled set), check it, write the normal form and previews.

Runs in the sandbox child for JobSpec action "dataset". Writes into spec.out_dir:
dataset.npz (x float32 [N, ...] or int64 token ids [N, L], y int64 [N] and class_names when labelled) and
preview_0.png.. when samples are images. A text dataset's dataset.npz holds its texts instead of x
(`optimizers.data.text_arrays`), tokenized later by each job's model; its info shows the first few texts.
Each file is written under a temporary name and renamed when complete.
"""

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from optimizers.data import limits
from optimizers.data.arrays import LoadedDataset
from optimizers.data.csv_source import read_csv
from optimizers.data.image_source import read_image_zip
from optimizers.data.npz_source import read_npz
from optimizers.data.options import parse_dataset_options
from optimizers.data.previews import write_previews
from optimizers.data.text_arrays import SEQUENCE_LENGTH, pack_texts
from optimizers.data.text_source import LoadedTexts, read_texts
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
    if kind == "text":
        return _prepare_texts(spec, options, steps, report)
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


def _prepare_texts(spec: Any, options: dict[str, Any], steps: JobSteps, report: Reporter) -> dict[str, Any]:
    steps.begin("read")
    loaded = read_texts(spec.dataset_source, options)
    for note in loaded.notes:
        report.log(note)
    sequence_length = options.get("sequence_length", limits.DEFAULT_SEQUENCE_LENGTH)
    steps.begin("write")
    out_dir = Path(spec.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = {**pack_texts(loaded.texts), SEQUENCE_LENGTH: np.array(sequence_length, dtype=np.int64),
              **_label_arrays(loaded.y, loaded.class_names)}
    _write_npz(arrays, out_dir)
    steps.finish()
    return describe_texts(loaded, sequence_length)


def describe_texts(loaded: LoadedTexts, sequence_length: int) -> dict[str, Any]:
    """A text dataset's info: counts, and the first few texts (cut short) for the page, which escapes them."""
    labelled = loaded.y is not None
    lengths = [len(text) for text in loaded.texts]

    def preview(index: int) -> dict[str, Any]:
        text = loaded.texts[index]
        cut = text if len(text) <= limits.PREVIEW_TEXT_CHARS else text[:limits.PREVIEW_TEXT_CHARS - 1] + "…"
        return {"text": cut, "label": loaded.class_names[loaded.y[index]] if labelled else None}

    return {
        "samples": len(loaded.texts),
        "sample_shape": None,  # texts have no shape until a model's tokenizer makes token ids of them
        "dtype": "text",
        "format": loaded.format,
        "sequence_length": sequence_length,
        "characters": sum(lengths),
        "longest_text_chars": max(lengths),
        "has_labels": labelled,
        "classes": loaded.class_names if labelled else None,
        "num_classes": len(loaded.class_names) if labelled else None,
        "class_counts": np.bincount(loaded.y, minlength=len(loaded.class_names)).tolist() if labelled else None,
        "kind": "text",
        "files": [DATASET_NAME],
        "notes": loaded.notes,
        "preview_texts": [preview(index) for index in range(min(limits.PREVIEW_TEXTS, len(loaded.texts)))],
        "preview_labels": {},
    }


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
    images, target = _digits_arrays()
    x = (images.astype(np.float32) / 16.0)[:, None, :, :]
    return LoadedDataset(x, target.astype(np.int64), [str(digit) for digit in range(10)], images=True)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images 1797x8x8, labels): the file scikit-learn's load_digits reads, read without importing scikit-learn
    (1.5 s of a dataset job's 3); load_digits itself where that file is not where it has always been."""
    spec = importlib.util.find_spec("sklearn")  # finds the package, imports nothing
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",")
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits  # only this kind needs scikit-learn

    digits = load_digits()
    return digits.images, digits.target


def write_dataset(dataset: LoadedDataset, out_dir: Path) -> str:
    return _write_npz({"x": dataset.x, **_label_arrays(dataset.y, dataset.class_names)}, out_dir)


def _label_arrays(y: np.ndarray | None, class_names: list[str] | None) -> dict[str, np.ndarray]:
    if y is None:
        return {}
    return {"y": y, "class_names": np.array(class_names, dtype=str)}  # a unicode array: loads without pickle


def _write_npz(arrays: dict[str, np.ndarray], out_dir: Path) -> str:
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
    token_ids = dataset.x.dtype == np.int64
    previews_of_ids = {"preview_ids": [row[:limits.PREVIEW_TOKEN_IDS].tolist()
                                       for row in dataset.x[:limits.PREVIEW_TEXTS]]} if token_ids else {}
    return {
        "samples": len(dataset.x),
        "sample_shape": list(dataset.x.shape[1:]),
        "dtype": str(dataset.x.dtype),
        "has_labels": labelled,
        "classes": dataset.class_names if labelled else None,
        "num_classes": len(dataset.class_names) if labelled else None,
        "class_counts": counts,
        "kind": kind,
        "files": files,
        "notes": dataset.notes,
        "preview_labels": {name: dataset.class_names[dataset.y[index]] for name, index in (previews or {}).items()}
        if labelled else {},
        **previews_of_ids,
    }
