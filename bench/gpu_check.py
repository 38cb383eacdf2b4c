"""Issue-15 GPU check: every recipe and variant on CUDA through Slimforge's own code, measured, as one JSON file.

    python bench/gpu_check.py --out gpu_check.json              # on a GPU machine: about 5 minutes on one H200
    python bench/gpu_check.py --device cpu --quick --out x.json  # smoke test anywhere: tiny sizes, under a minute
    bash bench/gpu_session.sh                                    # the device tool's one command (see its header)

Needs PyTorch, numpy and torch-pruning (no Django, Celery or scikit-learn: the data are synthetic); it imports only
Slimforge's `optimizers` package (PyTorch-only by contract), `bench/gpu_check_parts.py` (sizes, rows, measuring and
telemetry), `bench/parallelize_gpu.py` (the GPU plan search, reused)
and `tasks/gpu_telemetry.py` (the worker's NVML reader, which imports nothing but pynvml and optimizers.errors).
Optional packages are used when importable and their absence is a "skipped: <why>" row: nvidia-ml-py (pynvml:
energy and telemetry), torchao (int8 / int4 weight-only and fp8), transformers (2:4 on a small BERT).

What runs (one function per check; each row says ok, skipped: <why>, refused: <why> or failed: <error>):
- quantize: fp32 eager baseline, then every variant of `optimizers/configs/quantize_routes.py` that an eager model
  takes on a GPU (fp16, bf16 and the torchao routes: weight-only int8 / int4, fp8), each through the recipe and
  measured with the shared report (`optimizers.measure.report.measure_model`: latency, throughput, peak memory,
  energy per 1,000 inferences from NVML's counter);
- prune: 2:4 semi-structured on a wide MLP and on a small BERT's Linear layers, through the recipe (which keeps a
  layer only where 2:4 measured faster); each layer's dense and 2:4 time, and the whole model's fp16 latency dense
  against 2:4 when the recipe kept any layer;
- distill: a short run, the teacher on the GPU (the recipe trains its students on the CPU); parallelize:
  bench/parallelize_gpu.py's plan search on a ResNet-18-class model against fp32 eager at batch 256; DDP: every GPU
  as a rank (training/distributed.py);
- the issue's targets as rows with met / not met: best plan >= 3x fp32 eager throughput at batch 256; best plan's
  energy per image <= 0.55x fp32 eager's; fp8 speedup measured; NVML power, temperature, utilization, memory and
  energy each sampled at <= 1 s intervals during one job (the plan search).

Wheels a GPU machine may lack, carried in `.whl/` (ignored by .gitignore; bench/gpu_session.sh installs them):
torch-pruning (every `optimizers.recipes` import needs it: prune/structured.py) and torchao (requirements.txt's pins;
whether torchao 0.18 works with the H200 image's torch 2.11 is for the first run to show: its rows say so), and
transformers, tokenizers, safetensors, huggingface-hub only where the image has none (it had them on 2026-11-17).
From the repository's root on a machine with pip and the internet (Python 3.12, x86-64 manylinux):

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl torch-pruning==1.6.1 torchao==0.18.0  # + transformers==5.25.0 tokenizers==0.23.3 ... if missing
"""
import argparse
import copy
import dataclasses
import json
import platform
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gpu_check_parts import (  # noqa: E402
    CLASSES,
    FULL,
    NO_CUDA,
    QUICK,
    Context,
    Row,
    energy_per_1000,
    measured,
    synthetic_splits,
    telemetry,
)
from bench.parallelize_gpu import search_against_baseline  # noqa: E402
from optimizers.configs import DistillConfig, PruneConfig, QuantizeConfig  # noqa: E402
from optimizers.configs.finetune import TrainSettings  # noqa: E402
from optimizers.configs.parallelize import ParallelizeConfig  # noqa: E402
from optimizers.configs.quantize_routes import ROUTES, Route  # noqa: E402
from optimizers.data.splits import DataSplits  # noqa: E402
from optimizers.errors import RecipeError, first_line  # noqa: E402
from optimizers.formats.model_io import load_model  # noqa: E402
from optimizers.measure.inference import latency_ms  # noqa: E402
from optimizers.measure.report import reference_outputs  # noqa: E402
from optimizers.recipes.distill.recipe import distill  # noqa: E402
from optimizers.recipes.parallelize.recipe import parallelize  # noqa: E402
from optimizers.recipes.prune.recipe import prune  # noqa: E402
from optimizers.recipes.prune.semi_structured import cuda_refusal, eligible_linears  # noqa: E402
from optimizers.recipes.quantize.recipe import quantize  # noqa: E402
from optimizers.recipes.quantize.torchao_routes import DeviceBoundary, torchao_refusal  # noqa: E402
from optimizers.reporters import NullReporter  # noqa: E402
from optimizers.training.loop import fit, train  # noqa: E402
from optimizers.training.replicated import fit_replicated  # noqa: E402
from optimizers.zoo.models import build_model  # noqa: E402

THROUGHPUT_TARGET = "target: best plan >= 3x fp32 eager throughput (ResNet-18 class, batch 256)"
ENERGY_TARGET = "target: best plan energy per image <= 0.55x fp32 eager"

# --- the checks ----------------------------------------------------------------------------------------------------

def check_environment(ctx: Context) -> list[Row]:
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name, module in (("pynvml", "pynvml"), ("torchao", "torchao"), ("transformers", "transformers"),
                         ("onnxruntime", "onnxruntime")):
        try:
            versions[name] = getattr(__import__(module), "__version__", "present")
        except Exception as error:  # noqa: BLE001 - ImportError, or a package that breaks on import
            versions[name] = f"missing ({first_line(error)})"
    figures = {"device": str(ctx.device), "cuda_available": torch.cuda.is_available(),
               "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())], **versions}
    if torch.cuda.is_available():
        figures["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    return [Row("environment", figures=figures, note=", ".join(f"{key} {value}" for key, value in versions.items()))]


def quantize_variants() -> list[str]:
    """The route table's variants an eager model takes, in its order: fp16, bf16 and the CUDA (torchao) ones."""
    return [variant for variant, kinds in ROUTES.items()
            if isinstance(kinds.get("eager"), Route)
            and (kinds["eager"].device == "cuda" or kinds["eager"].name.startswith("cast_"))]


def check_quantize(ctx: Context) -> list[Row]:
    torch.manual_seed(0)
    model = build_model("mlp", ctx.sizes.quantize_mlp).to(ctx.device)
    example = torch.randn(1, ctx.sizes.quantize_mlp["in_features"], device=ctx.device)
    inputs = synthetic_splits(ctx.sizes.quantize_mlp["in_features"], 320)  # fidelity on its 64 validation samples
    reference = reference_outputs(model, example, inputs, time_budget_s=ctx.sizes.measure_s)
    baseline = Row("quantize fp32 (baseline)", figures=measured(model, example, ctx, reference, inputs))
    rows = [baseline]
    for variant in quantize_variants():
        route = ROUTES[variant]["eager"]
        row = Row(f"quantize {variant}")
        rows.append(row)
        if route.device == "cuda":
            reason = torchao_refusal(variant)
            if reason:
                row.status = NO_CUDA if not ctx.cuda else f"skipped: {reason}"
                continue
        try:
            started = time.perf_counter()
            result = quantize(model, None, QuantizeConfig(variant=variant), NullReporter(), example=example)
            seconds = time.perf_counter() - started
            row.figures = {**measured(result.model, example, ctx, reference, inputs), "quantize_s": round(seconds, 2),
                           "backend": result.backend}
            # Throughput is per sample: it compares even when one of the two fell back to batch 1 for time.
            row.figures["speedup_vs_fp32"] = _ratio(row.figures["throughput_per_s"],
                                                    baseline.figures["throughput_per_s"])
            row.note = (f"{row.figures['speedup_vs_fp32']}x fp32's throughput (batch {row.figures['batch']} against "
                        f"{baseline.figures['batch']})")
        except Exception as error:  # noqa: BLE001 - one variant's failure is its row, the others still run
            row.status = f"failed: {first_line(error)}"
    fp8 = next(row for row in rows if row.check == "quantize fp8_cuda")
    target = Row("target: fp8 speedup measured", target="fp8 latency against fp32 eager, reported",
                 status=fp8.status if fp8.status != "ok" else "ok")
    if fp8.status == "ok":
        target.figures = {"speedup_vs_fp32": fp8.figures["speedup_vs_fp32"], "batch": fp8.figures["batch"]}
        target.met = fp8.figures["speedup_vs_fp32"] is not None
        target.note = f"fp8 {fp8.figures['speedup_vs_fp32']}x fp32 eager's throughput at batch {fp8.figures['batch']}"
    return rows + [target]


def check_prune_mlp(ctx: Context) -> list[Row]:
    width = ctx.sizes.prune_hidden
    torch.manual_seed(0)
    model = build_model("mlp", {"in_features": 64, "hidden": [width, width], "num_classes": CLASSES})
    splits = synthetic_splits(64, ctx.sizes.train_samples)
    return [_two_four(Row("prune 2:4 (MLP)"), model, splits, torch.randn(1, 64), ctx)]


def check_prune_transformers(ctx: Context) -> list[Row]:
    row = Row("prune 2:4 (BERT Linear layers)")
    try:
        import transformers  # noqa: F401
    except ImportError as error:
        row.status = f"skipped: transformers is not installed ({first_line(error)})"
        return [row]
    model = load_model(bert_zip(ctx.folder, ctx.sizes.bert))[0]
    tokens, vocabulary = ctx.sizes.bert_tokens, 1000
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocabulary, (ctx.sizes.train_samples // 4, tokens), generator=generator)
    labels = ids[:, 0] % 2  # the class is in the first token: learnable
    cut = len(ids) * 4 // 5
    splits = DataSplits(ids[:cut], labels[:cut], ids[cut:], labels[cut:], class_names=["0", "1"], input_dtype="int64")
    return [_two_four(row, model, splits, model.example_ids((1, tokens)), ctx)]


def bert_zip(folder: Path, settings: dict) -> Path:
    """A random-weight BertForSequenceClassification saved as a zipped Hugging Face folder (what a user uploads)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    config = transformers.BertConfig(vocab_size=1000, max_position_embeddings=128, num_labels=2, **settings)
    torch.manual_seed(0)
    model_folder = folder / "bert"
    transformers.BertForSequenceClassification(config).eval().save_pretrained(model_folder)
    path = folder / "bert.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(model_folder.iterdir()):
            archive.write(file, f"bert/{file.name}")
    return path


def _two_four(row: Row, model: nn.Module, splits: DataSplits, example: torch.Tensor, ctx: Context) -> Row:
    """The prune recipe's 2:4 method; each layer's dense and 2:4 time; the model's fp16 latency dense and 2:4."""
    candidates = eligible_linears(model, ignore_classifier=True)
    refusal = cuda_refusal()
    if refusal or not ctx.cuda:  # the model was built and loaded all the same: that much is checked on any machine
        row.status = NO_CUDA if not ctx.cuda or not torch.cuda.is_available() else f"skipped: {refusal}"
        row.figures = {"eligible_layers": len(candidates)}
        return row
    from optimizers.recipes.prune.two_four_timing import time_layers

    timings, untimed = time_layers(model, candidates, example, 32)
    row.figures = {"layers": {name: dataclasses.asdict(timing) | {"speedup": round(timing.speedup, 3)}
                              for name, timing in timings.items()}, "untimed": untimed}
    config = PruneConfig(method="semi_structured_2_4", epochs=ctx.sizes.epochs)
    started = time.perf_counter()
    try:
        result = prune(model, splits, config, NullReporter(), example=example)
    except RecipeError as error:
        row.status = f"refused: {first_line(error)}"
        best = max((timing.speedup for timing in timings.values()), default=None)
        row.figures["best_layer_speedup"] = round(best, 3) if best is not None else None
        if first_line(error).startswith("2:4 sparsity was not at least"):
            row.status = "refused: no layer measured faster in 2:4"
            row.note = (f"the recipe keeps a layer only where 2:4 ran >= {config.min_speedup}x dense at batch 32; "
                        f"the best layer ran {row.figures['best_layer_speedup']}x")
        return row
    chosen = [name for name, timing in result.extras["layer_timings"].items() if timing["used"]]
    row.figures.update(recipe_s=round(time.perf_counter() - started, 1), chosen=chosen,
                       recipe_layer_timings=result.extras["layer_timings"])
    row.figures.update(_model_latency_dense_and_two_four(result.model, chosen, example, ctx))
    row.note = (f"{len(chosen)} layer(s) made 2:4; whole model fp16 at batch {row.figures['batch']}: "
                f"{row.figures['speedup']}x dense")
    return row


def _model_latency_dense_and_two_four(model: nn.Module, chosen: list[str], example: torch.Tensor,
                                      ctx: Context) -> dict:
    """fp16 latency with the chosen weights dense, then as sparse semi-structured tensors (as the recipe's note
    tells users to run them)."""
    from torch.sparse import to_sparse_semi_structured

    batch = ctx.sizes.parallel_batch
    inputs = example.expand(batch, *example.shape[1:]).contiguous().to(ctx.device)
    inputs = inputs.half() if inputs.is_floating_point() else inputs
    dense = copy.deepcopy(model).half().to(ctx.device).eval()
    dense_ms = latency_ms(dense, inputs, repeats=30, warmup=5)["p50"]
    for name in chosen:
        layer = dense.get_submodule(name)
        layer.weight = nn.Parameter(to_sparse_semi_structured(layer.weight.detach()), requires_grad=False)
    sparse_ms = latency_ms(dense, inputs, repeats=30, warmup=5)["p50"]
    return {"batch": batch, "p50_ms": sparse_ms, "dense_p50_ms": dense_ms, "speedup": _ratio(dense_ms, sparse_ms),
            "throughput_per_s": round(batch * 1000 / sparse_ms, 1)}


def check_distill(ctx: Context) -> list[Row]:
    features = 64
    splits = synthetic_splits(features, ctx.sizes.train_samples)
    torch.manual_seed(0)
    architecture = {"name": "mlp", "config": {"in_features": features, "hidden": [256, 256], "num_classes": CLASSES}}
    teacher = build_model("mlp", architecture["config"]).to(ctx.device)
    started = time.perf_counter()
    taught = fit(teacher, splits, (1, features), TrainSettings(epochs=ctx.sizes.epochs * 3))
    # The recipe builds its students on the CPU (as the worker loads every model there); a GPU teacher sits behind
    # Slimforge's device boundary, which moves the students' batches to it and its outputs back.
    boundary = DeviceBoundary(teacher, ctx.device, torch.float32).eval()
    student_config = json.dumps({"in_features": features, "hidden": [32], "num_classes": CLASSES})
    config = DistillConfig(epochs=ctx.sizes.epochs, seeds=1, compare_without_teacher=False,
                           student_config=student_config)
    result = distill(boundary, splits, config, NullReporter(), example=torch.zeros(1, features),
                     architecture=architecture)
    seconds = time.perf_counter() - started
    outcome = result.extras.get("distill", {})
    student = result.model.to(ctx.device)
    figures = {**measured(student, torch.zeros(1, features, device=ctx.device), ctx), "run_s": round(seconds, 1),
               "teacher_accuracy": round(taught.best_val_accuracy, 4),
               "student_accuracy": (outcome.get("students") or {}).get("mean"),
               "student_params": sum(p.numel() for p in student.parameters()),
               "student_device_in_training": "cpu"}
    return [Row("distill (short run)", figures=figures,
                note="teacher trained on " + str(ctx.device) + "; the recipe trains students on the CPU "
                     "(students are built there); the teacher ran behind DeviceBoundary")]


def check_parallelize(ctx: Context) -> list[Row]:
    if not ctx.cuda:
        with telemetry(ctx, "the ResNet plan search"):
            searched = _parallelize_cpu(ctx)
        return searched + [Row(THROUGHPUT_TARGET, status=NO_CUDA), Row(ENERGY_TARGET, status=NO_CUDA)]
    from optimizers.recipes.parallelize.cuda_plans import CudaServer, prepared_module

    sizes = ctx.sizes
    with telemetry(ctx, "the ResNet plan search"):
        searched = search_against_baseline(sizes.resnet, sizes.parallel_batch, sizes.search_s, repeats=20,
                                           try_compile=not ctx.quick)
    plan, model, host = searched["found"]["plan"], searched["model"], searched["host_batch"]
    speedup = _ratio(plan["throughput_per_s"], searched["baseline_rate"])
    plan_row = Row("parallelize: GPU plan search (ResNet)", figures={
        "plan": plan["variant"], "batch": plan["batch"], "p50_ms": plan["p50_ms"], "p95_ms": plan["p95_ms"],
        "throughput_per_s": plan["throughput_per_s"], "baseline_p50_ms": searched["baseline"]["p50"],
        "baseline_rate": round(searched["baseline_rate"], 1), "search_s": round(searched["seconds"], 1),
        "points": len(searched["found"]["points"])},
        note=f"{plan['variant']} at batch {plan['batch']}: {speedup}x fp32 eager at batch {sizes.parallel_batch}")
    quick = f"; --quick: a small ResNet at batch {sizes.parallel_batch}, not the issue's model" if ctx.quick else ""
    rows = [plan_row, Row(THROUGHPUT_TARGET, figures={"speedup": speedup}, target=">= 3x",
                          met=speedup is not None and speedup >= 3, note=f"{speedup}x{quick}")]
    plan_host = host[:1].expand(plan["batch"], *host.shape[1:]).contiguous()
    baseline_server = CudaServer(prepared_module(model, "fp32", ctx.device, {}), "fp32", host, ctx.device)
    plan_server = CudaServer(prepared_module(model, plan["variant"], ctx.device, {}), plan["variant"], plan_host,
                             ctx.device)
    before, before_note = energy_per_1000(baseline_server, len(host), ctx.device, sizes.energy_s)
    after, after_note = energy_per_1000(plan_server, len(plan_host), ctx.device, sizes.energy_s)
    ratio = _ratio(after, before)
    energy = Row(ENERGY_TARGET, target="<= 0.55x",
                 figures={"fp32_j_per_1000": before, "plan_j_per_1000": after, "ratio": ratio},
                 met=ratio is not None and ratio <= 0.55, note=after_note if after is not None else before_note)
    if before is None or after is None:
        energy.status = f"skipped: {before_note if before is None else after_note}"
    plan_row.figures["energy_j_per_1000"] = after
    return rows + [energy]


def _parallelize_cpu(ctx: Context) -> list[Row]:
    torch.manual_seed(0)
    model = build_model("resnet", ctx.sizes.resnet)
    size = ctx.sizes.resnet["image_size"]
    config = ParallelizeConfig(device="cpu", batch_sizes=(1, ctx.sizes.parallel_batch), threads=(1,), replicas=(1,),
                               repeats=3, search_seconds=ctx.sizes.search_s)
    started = time.perf_counter()
    found = parallelize(model, None, config, NullReporter(), example=torch.rand(1, 3, size, size)).extras
    plan = found["plan_search"]["plan"]
    return [Row("parallelize: CPU plan search (ResNet)", figures={
        "plan": plan["variant"], "batch": plan["batch"], "p50_ms": plan["p50_ms"], "p95_ms": plan["p95_ms"],
        "throughput_per_s": plan["throughput_per_s"], "search_s": round(time.perf_counter() - started, 1)},
        note="the GPU plan search needs CUDA; this is the recipe's CPU search")]


def check_ddp(ctx: Context) -> list[Row]:
    if not ctx.cuda:
        return [Row("DDP: every GPU a rank", status=NO_CUDA)]
    gpus = torch.cuda.device_count()
    features = 64
    splits = synthetic_splits(features, ctx.sizes.train_samples)
    torch.manual_seed(0)
    model = build_model("mlp", {"in_features": features, "hidden": [512, 512], "num_classes": CLASSES}).to(ctx.device)
    settings = TrainSettings(epochs=ctx.sizes.epochs, batch_size=64, ranks=gpus)
    started = time.perf_counter()
    if gpus > 1:
        outcome = fit(model, splits, (1, features), settings)
        note = f"{gpus} GPUs: {gpus} NCCL ranks, with the recipe's scaling probe"
    else:
        # fit trains a single rank in its own process; one spawned NCCL rank is the path N GPUs take.
        options = {"checkpoint_dir": None, "stage": "fine-tune", "prefix": "fine-tune", "loss_fn": None,
                   "after_step": None, "step_offset": 0, "evaluate_fn": None, "score_name": "accuracy"}
        outcome = fit_replicated(train, model, splits, (1, features), settings, NullReporter(), options, 1, "nccl")
        note = "1 GPU: ranks=1, one spawned NCCL rank through run_ranks (no scaling to measure)"
    distributed = outcome.distributed or {}
    in_step = distributed.get("replica_checks") == outcome.steps
    return [Row("DDP: every GPU a rank", figures={
        "gpus": gpus, "ranks": distributed.get("ranks"), "backend": distributed.get("backend"),
        "replica_checks": distributed.get("replica_checks"), "steps": outcome.steps,
        "scaling": distributed.get("scaling"), "val_accuracy": round(outcome.best_val_accuracy, 4),
        "wall_s": round(time.perf_counter() - started, 1)},
        target="replicas identical after every step", met=in_step, note=note)]


# In the order they run: the targets first, so a run cut short by its time budget still has them.
CHECKS: dict[str, Callable[[Context], list[Row]]] = {
    "environment": check_environment, "parallelize": check_parallelize, "quantize": check_quantize,
    "prune": check_prune_mlp, "prune_transformers": check_prune_transformers, "distill": check_distill,
    "ddp": check_ddp,
}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator is not None and denominator else None


def run_check(name: str, ctx: Context) -> None:
    """Run one check; an exception becomes its failed row, and the next check still runs."""
    started = time.perf_counter()
    before = len(ctx.rows)
    try:
        ctx.rows.extend(CHECKS[name](ctx))
    except Exception as error:  # noqa: BLE001 - the report says which check broke and how
        ctx.rows.append(Row(name, status=f"failed: {type(error).__name__}: {first_line(error)}"))
    finally:
        if ctx.cuda:
            torch.cuda.empty_cache()
    print(f"[{time.perf_counter() - started:6.1f} s] {name}:", flush=True)
    for row in ctx.rows[before:]:
        print(f"    {row.check}: {row.status}" + (f" ({row.note})" if row.note else ""), flush=True)


# --- the table -----------------------------------------------------------------------------------------------------

COLUMNS = (("check", 52), ("status", 24), ("batch", 5), ("p50 ms", 9), ("samples/s", 11), ("peak MB", 8),
           ("J/1000", 8), ("met", 5))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def table(rows: list[Row]) -> str:
    lines = [" | ".join(title.ljust(width) for title, width in COLUMNS)]
    lines.append("-+-".join("-" * width for _, width in COLUMNS))
    for row in rows:
        figures = row.figures
        values = (row.check, row.status, figures.get("batch"), figures.get("p50_ms"), figures.get("throughput_per_s"),
                  figures.get("peak_memory_mb"), figures.get("energy_j_per_1000"), row.met)
        cells = [_cell(value) for value in values]
        lines.append(" | ".join(cell[:width].ljust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True)))
        if len(row.status) > COLUMNS[1][1]:
            lines.append(" " * 4 + "- " + row.status)
        if row.note and row.check != "environment":
            lines.append(" " * 4 + "- " + row.note)
    return "\n".join(lines)


def write_report(args: argparse.Namespace, ctx: Context, seconds: float) -> dict:
    report = {"device": args.device, "quick": args.quick, "seconds": round(seconds, 1),
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "rows": [dataclasses.asdict(row) for row in ctx.rows]}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the logic")
    parser.add_argument("--out", type=Path, help="where to write the JSON report")
    parser.add_argument("--only", default=",".join(CHECKS), help=f"checks to run, comma-separated: {', '.join(CHECKS)}")
    parser.add_argument("--budget-s", type=float, help="start no check after this many seconds (its row says so)")
    parser.add_argument("--table", type=Path, help="only print the table of a report written before, and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(table([Row(**row) for row in json.loads(args.table.read_text())["rows"]]))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no CUDA device; use --device cpu")
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(CHECKS))
    if unknown:
        parser.error(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    if args.quick and args.device == "cpu":
        torch.set_num_threads(1)  # a smoke test on a shared machine: one thread, as a job runs, and steadier timings
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        ctx = Context(torch.device(args.device), QUICK if args.quick else FULL, args.quick, Path(folder))
        for name in chosen:
            spent = time.perf_counter() - started
            if args.budget_s is not None and spent > args.budget_s:
                ctx.rows.append(Row(name, status=f"skipped: the run's budget of {args.budget_s:g} s was spent"))
            else:
                run_check(name, ctx)
            report = write_report(args, ctx, time.perf_counter() - started)  # after each: a killed run keeps its rows
    print()
    print(table(ctx.rows))
    print(f"\n{len(ctx.rows)} rows in {report['seconds']} s" + (f"; JSON: {args.out}" if args.out else ""))
    return 1 if any(row.status.startswith("failed") for row in ctx.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
