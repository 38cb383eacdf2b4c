"""Issue-10 DDP target on this machine: the reference models fine-tuned from scratch on 1 and on 2 gloo ranks,
measured in the same run: training samples/s at 1..2 ranks (the recipe's own probe), scaling efficiency, wall time
of the whole run, replica checks against the steps taken, and the accuracy reached. Writes the "DDP" section of
bench/RESULTS.md.

    .venv/bin/python bench/ddp.py        # a few minutes on a 2-core machine
"""
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.reference_models import OUT, REFERENCE_MODELS, machine, write_results  # noqa: E402
from optimizers.data.job import load_digits_dataset, write_dataset  # noqa: E402
from optimizers.data.splits import load_splits  # noqa: E402
from optimizers.training.loop import TrainSettings, fit  # noqa: E402
from optimizers.zoo.models import build_model  # noqa: E402

MODELS = ("mlp", "small_cnn", "cnn_wide", "resnet")
EPOCHS, BATCH = 3, 128


def trained(name: str, splits, ranks: int):
    architecture, config, input_shape, _ = REFERENCE_MODELS[name]
    torch.manual_seed(0)
    model = build_model(architecture, config)
    started = time.perf_counter()
    outcome = fit(model, splits, input_shape, TrainSettings(epochs=EPOCHS, batch_size=BATCH, ranks=ranks))
    return outcome, time.perf_counter() - started


def row(name: str, splits) -> str:
    alone, alone_s = trained(name, splits, 1)
    shared, shared_s = trained(name, splits, 2)
    one, two = shared.distributed["scaling"]
    in_step = shared.distributed["replica_checks"] == shared.steps
    print(f"{name}: {one} {two}; {alone_s:.1f} s vs {shared_s:.1f} s; checks {shared.distributed['replica_checks']}")
    return (f"| {name} | {one['samples_per_s']:,.0f} | {two['samples_per_s']:,.0f} | {two['efficiency']:.2f} | "
            f"{alone_s:.1f} | {shared_s:.1f} | {shared.distributed['replica_checks']} of {shared.steps} | "
            f"{alone.best_val_accuracy:.4f} | {shared.best_val_accuracy:.4f} | {'held' if in_step else 'missed'} |")


def main() -> None:
    torch.set_num_threads(1)  # as a job runs: one thread per process, so 2 ranks use the 2 cores
    OUT.mkdir(parents=True, exist_ok=True)
    if not (OUT / "dataset.npz").exists():
        write_dataset(load_digits_dataset(), OUT)
    splits = load_splits(OUT / "dataset.npz")
    rows = [row(name, splits) for name in MODELS]
    body = (f"Machine: {machine()}. `fit` with ranks 1 and 2 (gloo, one thread per rank), {EPOCHS} epochs from "
            f"scratch, batch {BATCH} shared between the ranks. samples/s: the loop's own probe, 20 timed training "
            "steps per rank count after 3 warm-up steps; efficiency = samples/s at 2 ranks / (2 × at 1). Wall time: "
            "the whole fit, the 2-rank one including its probe and the processes' start. Target: replicas identical "
            "after every step (checked: each parameter's float64 sum, all-gathered and compared, after each step); "
            "efficiency reported as measured.\n\n"
            "| model | 1 rank samples/s | 2 ranks samples/s | efficiency | 1 rank wall (s) | 2 ranks wall (s) | "
            "replica checks | 1 rank val acc | 2 ranks val acc | target |\n|---|---|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")
    write_results("DDP", body)
    print(body)


if __name__ == "__main__":
    main()
