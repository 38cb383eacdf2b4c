"""Issue-4 targets: quantize and prune the reference models through the product's own job code and compare with
fp32 in the same run. Writes the "Recipes" section of bench/RESULTS.md.

    .venv/bin/python bench/recipes.py        # a few minutes on a 2-core machine (pruning fine-tunes)
"""
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.reference_models import (  # noqa: E402
    OUT,
    REFERENCE_MODELS,
    machine,
    measure_formats,
    train_reference,
    write_results,
)
from optimizers.data.job import load_digits_dataset, write_dataset  # noqa: E402
from optimizers.data.splits import load_splits  # noqa: E402
from optimizers.formats.statedict import save_safetensors  # noqa: E402
from optimizers.job_runner import run_recipe  # noqa: E402
from optimizers.job_spec import JobSpec  # noqa: E402
from optimizers.reporters import NullReporter  # noqa: E402

# (model, recipe, config, targets: {figure: (limit, "<=" or ">=")})
RUNS = [
    ("mlp", "quantize", {"variant": "dynamic_int8"}, {"file": 0.30, "latency_b32": 0.6, "accuracy_drop": 0.5}),
    ("mlp", "quantize", {"variant": "static_int8"}, {"file": 0.30, "latency_b32": 0.6, "accuracy_drop": 0.5}),
    ("mlp_wide", "quantize", {"variant": "dynamic_int8"}, {"file": 0.30, "latency_b32": 0.6, "accuracy_drop": 0.5}),
    ("mlp_wide", "quantize", {"variant": "static_int8"}, {"file": 0.30, "latency_b32": 0.6, "accuracy_drop": 0.5}),
    # dynamic int8 quantizes Linear (and LSTM/GRU) layers only: on a CNN it is shown, not held to the targets
    ("small_cnn", "quantize", {"variant": "dynamic_int8"}, {"file": None, "latency_b32": None, "accuracy_drop": 0.5}),
    ("small_cnn", "quantize", {"variant": "static_int8"}, {"file": 0.30, "latency_b32": 0.6, "accuracy_drop": 0.5}),
    ("cnn_wide", "quantize", {"variant": "static_int8"}, {"file": 0.30, "latency_b32": 0.6, "accuracy_drop": 0.5}),
    ("small_cnn", "prune", {"method": "structured", "target_macs_ratio": 0.5},
     {"macs": 0.5, "latency_b32": 0.75, "accuracy_drop": 1.0}),
    ("resnet", "prune", {"method": "structured", "target_macs_ratio": 0.5},
     {"macs": 0.5, "latency_b32": 0.75, "accuracy_drop": 1.0}),
    ("small_cnn", "prune", {"method": "unstructured", "target_sparsity": 0.8},
     {"sparse_file": 0.35, "accuracy_drop": 1.0}),
    ("resnet", "prune", {"method": "unstructured", "target_sparsity": 0.8},
     {"sparse_file": 0.35, "accuracy_drop": 1.0}),
]


def _batch_32(report: dict) -> float | None:
    return (report["latency_ms"].get("batch_32") or {}).get("p50")


def figures(result: dict, fp32: dict) -> dict:
    """Ratios like for like: the result's primary file against the fp32 model in the same format, measured in
    this run (the job's own "before" is the uploaded safetensors file, which holds no code and runs eagerly)."""
    before, after, ratios = result["before"], result["after"], result["ratios"]
    sparse = (result.get("extras") or {}).get("sparse_state_dict") or {}
    reference = fp32[next(iter(result["formats"]["written"]))]
    return {
        "file": round(after["size_bytes"] / reference["size_bytes"], 4),
        "latency_b32": round(_batch_32(after) / _batch_32(reference), 4) if _batch_32(reference) else None,
        "macs": ratios.get("macs"),
        "sparse_file": sparse.get("ratio"),
        "accuracy_drop": None if before.get("accuracy") is None or after.get("accuracy") is None
        else round(100 * (before["accuracy"] - after["accuracy"]), 2),
        "accuracy": (before.get("accuracy"), after.get("accuracy")),
    }


def run_one(model_name: str, recipe: str, config: dict, dataset: Path) -> tuple[dict, float]:
    architecture = {"name": REFERENCE_MODELS[model_name][0], "config": REFERENCE_MODELS[model_name][1]}
    out_dir = OUT / "runs" / f"{model_name}-{recipe}-{'-'.join(map(str, config.values()))}"
    spec = JobSpec.from_dict({
        "action": "run", "model_path": str(OUT / f"{model_name}.safetensors"),
        "input_shape": list(REFERENCE_MODELS[model_name][2]), "architecture": architecture, "recipe": recipe,
        "config": config, "out_dir": str(out_dir), "dataset_path": str(dataset)})
    started = time.perf_counter()
    result = run_recipe(spec, NullReporter())
    return result, time.perf_counter() - started


def verdict(value, limit) -> str:
    if limit is None:
        return "(shown only)"
    return "—" if value is None else ("yes" if value <= limit else "**no**")


def main() -> None:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    write_dataset(load_digits_dataset(), OUT)
    splits = load_splits(OUT / "dataset.npz")
    fp32 = {}  # model -> format -> report of the fp32 model saved in that format
    for name in sorted({run[0] for run in RUNS}):
        model, architecture, _ = train_reference(name, splits)
        save_safetensors(model, OUT / f"{name}.safetensors")
        fp32[name] = {row["format"]: row for row in measure_formats(name, model, architecture, splits)}
    lines = ["| model | recipe | settings | backend | accuracy before → after | figure | measured | target | met |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model_name, recipe, config, targets in RUNS:
        result, seconds = run_one(model_name, recipe, config, OUT / "dataset.npz")
        found = figures(result, fp32[model_name])
        before, after = found["accuracy"]
        settings = ", ".join(f"{k}={v}" for k, v in config.items())
        print(f"{model_name} {recipe} {settings}: {seconds:.0f} s, {found}")
        for figure, limit in targets.items():
            lines.append(f"| {model_name} | {recipe} | {settings} | {result['backend'][:60]} | "
                         f"{before:.4f} → {after:.4f} | {figure} | {found[figure]} | "
                         f"{'—' if limit is None else f'≤ {limit}'} | "
                         f"{verdict(found[figure], limit)} |")
    text = "\n".join(lines)
    print(text)
    write_results("Recipes", "Each row: the recipe run through `optimizers.job_runner.run_recipe` (the job the worker "
                  "runs) on a reference model given as a safetensors state dict, with the digits dataset; ratios "
                  "are after/before measured in the same run, like for like (file and p50 latency at batch 32: the "
                  "result's file against the fp32 model saved in the same format; MACs: the job's own); "
                  "sparse_file = compressed sparse state dict / dense state dict; accuracy_drop in points on "
                  "the validation split. A TorchScript archive carries its code and per-channel scales, tens of KB "
                  "whatever the model: a 50K-parameter model cannot reach a 0.30× file, while mlp_wide (1.1M "
                  "parameters) and cnn_wide show the weight-dominated ratio. Timings on a shared 2-core VM vary by "
                  f"about ±15% between runs.\n\nMachine: {machine()}.\n\n{text}\n")


if __name__ == "__main__":
    main()
