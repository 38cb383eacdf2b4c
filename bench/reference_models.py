"""Reference models for the benchmarks: train a small CNN, an MLP and a small zoo ResNet on digits, save each in
every format, measure each file with the shared report, and write the table to bench/RESULTS.md.

    .venv/bin/python bench/reference_models.py            # about a minute on a 2-core machine

The trained models stay in bench/out/ for the recipe benchmarks.
"""
import datetime
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import cpu_name, write_results  # noqa: E402,F401  (bench/recipes.py imports write_results from here)
from optimizers.data.job import load_digits_dataset, write_dataset  # noqa: E402
from optimizers.data.splits import load_splits  # noqa: E402
from optimizers.formats.model_io import load_model  # noqa: E402
from optimizers.formats.save_all import save_all_formats  # noqa: E402
from optimizers.job_runner import make_example  # noqa: E402
from optimizers.measure.report import measure_model, reference_outputs  # noqa: E402
from optimizers.training.loop import TrainSettings, fit  # noqa: E402
from optimizers.zoo.models import build_model  # noqa: E402

OUT = ROOT / "bench" / "out"
REFERENCE_MODELS = {
    "mlp": ("mlp", {"in_features": 64, "hidden": [256, 128], "num_classes": 10}, (1, 64), 15),
    # Wide enough that weights, not the archive's code, make up the file: what int8 file targets are about.
    "mlp_wide": ("mlp", {"in_features": 64, "hidden": [1024, 1024], "num_classes": 10}, (1, 64), 10),
    "small_cnn": ("small_cnn", {"in_channels": 1, "image_size": 8, "channels": [32, 64], "num_classes": 10},
                  (1, 1, 8, 8), 10),
    "cnn_wide": ("small_cnn", {"in_channels": 1, "image_size": 8, "channels": [64, 128, 256], "num_classes": 10},
                 (1, 1, 8, 8), 10),
    "resnet": ("resnet", {"block": "basic", "layers": [1, 1, 1, 1], "width": 0.25, "small_input": True,
                          "in_channels": 1, "image_size": 8, "num_classes": 10}, (1, 1, 8, 8), 10),
}


def train_reference(name: str, splits) -> tuple[torch.nn.Module, dict, float]:
    architecture, config, input_shape, epochs = REFERENCE_MODELS[name]
    torch.manual_seed(0)  # the same initial weights every run, so the table repeats
    model = build_model(architecture, config)
    started = time.perf_counter()
    outcome = fit(model, splits, input_shape, TrainSettings(epochs=epochs))
    print(f"{name}: val accuracy {outcome.best_val_accuracy:.4f} (epoch {outcome.best_epoch}) "
          f"in {time.perf_counter() - started:.1f} s")
    return model.eval(), {"name": architecture, "config": config}, outcome.best_val_accuracy


def measure_formats(name: str, model, architecture: dict, splits) -> list[dict]:
    """Save `model` in every format under bench/out/<name>/ and measure each file; one row per format."""
    input_shape = REFERENCE_MODELS[name][2]
    example = make_example(input_shape, "float32")
    saved = save_all_formats(model, OUT / name, example, primary="torchscript", architecture=architecture)
    reference = reference_outputs(model, example, splits)
    rows = []
    for fmt, filename in saved.files.items():
        loaded, _ = load_model(OUT / name / filename, architecture=architecture)
        report = measure_model(loaded, example, OUT / name / filename, splits=splits, reference=reference)
        rows.append({"model": name, "format": fmt, **report})
    for fmt, reason in saved.skipped.items():
        print(f"{name}: {fmt} not written: {reason}")
    return rows


def _cell(value, digits=3):
    return "—" if value is None else f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def table(rows: list[dict]) -> str:
    lines = ["| model | format | file (KB) | params | MACs | p50 b1 (ms) | p50 b32 (ms) | samples/s | "
             "peak MB | val accuracy |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        batch_32 = (r["latency_ms"].get("batch_32") or {}).get("p50")
        lines.append(f"| {r['model']} | {r['format']} | {r['size_bytes'] / 1024:,.1f} | {_cell(r['params'])} | "
                     f"{_cell(r['macs'])} | {_cell(r['latency_ms']['batch_1']['p50'])} | {_cell(batch_32)} | "
                     f"{_cell(r['throughput_per_s'], 0)} | {_cell(r['peak_memory_mb'], 1)} | "
                     f"{_cell(r['accuracy'], 4)} |")
    return "\n".join(lines)


def machine() -> str:
    return (f"{cpu_name()}, {torch.get_num_threads()} torch thread(s), Python {platform.python_version()}, "
            f"torch {torch.__version__}, {datetime.date.today().isoformat()}")


def main() -> None:
    torch.set_num_threads(1)  # the figures the product reports are single-threaded too
    OUT.mkdir(parents=True, exist_ok=True)
    write_dataset(load_digits_dataset(), OUT)
    splits = load_splits(OUT / "dataset.npz")
    rows = []
    for name in REFERENCE_MODELS:
        model, architecture, _ = train_reference(name, splits)
        rows += measure_formats(name, model, architecture, splits)
    text = table(rows)
    print(text)
    split = f"{len(splits.train_x):,} train / {len(splits.val_x):,} validation"
    write_results("Reference models", f"Trained on scikit-learn's digits ({split}, the product's split) with "
                  f"optimizers.training.loop, saved in every format, each file measured with the shared report "
                  f"(accuracy on the validation split).\n\nMachine: {machine()}.\n\n{text}\n")


if __name__ == "__main__":
    main()
