"""Issue-10 parallelize target on this machine: the best CPU plan for the reference CNNs against their batch-1
single-thread eager baseline, measured in the same run, and how long the search took. Writes the "Parallelize"
section of bench/RESULTS.md.

    .venv/bin/python bench/parallelize.py        # about a minute on a 2-core machine
"""
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.reference_models import REFERENCE_MODELS, machine, write_results  # noqa: E402
from optimizers.configs.parallelize import ParallelizeConfig  # noqa: E402
from optimizers.recipes.parallelize.recipe import parallelize  # noqa: E402
from optimizers.reporters import NullReporter  # noqa: E402
from optimizers.zoo.models import build_model  # noqa: E402

MODELS = ("small_cnn", "cnn_wide", "resnet")
CONFIG = ParallelizeConfig(device="cpu", batch_sizes=(1, 8, 32, 128, 512), threads=(1, 2))


def row(name: str) -> str:
    architecture, config, input_shape, _ = REFERENCE_MODELS[name]
    torch.manual_seed(0)
    model = build_model(architecture, config)
    started = time.perf_counter()
    found = parallelize(model, None, CONFIG, NullReporter(), example=torch.zeros(input_shape)).extras["plan_search"]
    seconds = time.perf_counter() - started
    plan, baseline = found["plan"], found["baseline"]
    held = found["speedup"] >= 3 and seconds <= 60
    print(f"{name}: {plan} vs {baseline} in {seconds:.1f} s")
    return (f"| {name} | {baseline['throughput_per_s']:,.0f} | {plan['variant']}, {plan['threads']} thread(s) × "
            f"{plan['replicas']} process(es), batch {plan['batch']} | {plan['throughput_per_s']:,.0f} | "
            f"{plan['p95_ms']:g} | {found['speedup']:.2f}× | "
            f"{len(found['points'])} | {seconds:.1f} | {'held' if held else 'missed'} |")


def main() -> None:
    torch.set_num_threads(1)
    rows = [row(name) for name in MODELS]
    body = (f"Machine: {machine()}. The recipe's own search (`optimizers.recipes.parallelize`) on untrained "
            f"reference models (timing does not depend on the weights), batches {list(CONFIG.batch_sizes)}, threads "
            f"{list(CONFIG.threads)} in one process and replica processes {list(CONFIG.replicas)} of one thread each, "
            "channels-last on, torch.compile off; the baseline is batch 1, one thread, eager, "
            "measured in the same search. Target: ≥ 3× throughput, found in ≤ 60 s.\n\n"
            "| model | baseline samples/s | plan | plan samples/s | plan p95 per batch (ms) | speedup | points | "
            "search (s) | target |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    write_results("Parallelize", body)
    print(body)


if __name__ == "__main__":
    main()
