"""Issue-10 distillation targets on the digits: students at a quarter of the teacher's parameters or less, with and
without the teacher over three seeds, and a thinner copy's start against a random one. Writes the "Distill"
section of bench/RESULTS.md.

    .venv/bin/python bench/distill.py        # several minutes on a 2-core machine
"""
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.reference_models import OUT, REFERENCE_MODELS, machine, train_reference, write_results  # noqa: E402
from optimizers.configs.distill import DistillConfig  # noqa: E402
from optimizers.data.job import load_digits_dataset, write_dataset  # noqa: E402
from optimizers.data.splits import load_splits  # noqa: E402
from optimizers.recipes.distill.loss import distillation_loss  # noqa: E402
from optimizers.recipes.distill.recipe import distill  # noqa: E402
from optimizers.recipes.distill.thinner import thinner_copy  # noqa: E402
from optimizers.reporters import NullReporter  # noqa: E402
from optimizers.training.loop import fit  # noqa: E402
from optimizers.zoo.models import build_model  # noqa: E402

SEEDS, EPOCHS = 3, 20
# (teacher, student settings): each student has at most a quarter of its teacher's parameters.
RUNS = [
    ("mlp", {"student": "builtin", "student_architecture": "mlp", "student_config": '{"hidden": [32]}'}),
    ("mlp", {"student": "thinner_copy", "student_width": 0.25}),
    ("small_cnn", {"student": "builtin", "student_architecture": "small_cnn",
                   "student_config": '{"channels": [8, 16]}'}),
    ("small_cnn", {"student": "thinner_copy", "student_width": 0.45}),
]


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def distill_row(name: str, teacher, architecture: dict, settings: dict, splits) -> str:
    config = DistillConfig(epochs=EPOCHS, seeds=SEEDS, **settings)
    example = torch.zeros(REFERENCE_MODELS[name][2])
    started = time.perf_counter()
    result = distill(teacher, splits, config, NullReporter(), example=example, architecture=architecture)
    summary = result.extras["distill"]
    students, baseline = summary["students"], summary["no_teacher"]
    share = students["mean"] / summary["teacher_accuracy"]
    held = share >= 0.97 and students["mean"] >= baseline["mean"]
    print(f"{name} -> {settings['student']}: {summary['verdict']} ({time.perf_counter() - started:.0f} s)")
    return (f"| {name} ({params(teacher):,}) | {settings['student']} {_describe(result.architecture)} "
            f"({params(result.model):,}, {params(result.model) / params(teacher):.2f}×) | "
            f"{summary['teacher_accuracy']:.2%} | {students['mean']:.2%} ± {students['std']:.2%} | "
            f"{baseline['mean']:.2%} ± {baseline['std']:.2%} | {share:.1%} | {summary['gain_points']:+.2f} | "
            f"{'held' if held else 'missed'} |")


def _describe(architecture: dict) -> str:
    config = architecture["config"]
    return f"{architecture['name']} {config.get('hidden', config.get('channels'))}"


def convergence_row(name: str, teacher, architecture: dict, width: float, splits) -> str:
    """Epochs each start needs, under distillation, to reach the random start's final validation accuracy."""
    config = DistillConfig(epochs=EPOCHS, student="thinner_copy", student_width=width)
    input_shape = REFERENCE_MODELS[name][2]
    copied, student_architecture, _ = thinner_copy(teacher, architecture, width, config.student_depth)
    torch.manual_seed(0)
    random_start = build_model(student_architecture["name"], student_architecture["config"])
    histories = {}
    for label, student in (("random", random_start), ("copy", copied)):
        outcome = fit(student, splits, input_shape, config.to_train_settings(), NullReporter(),
                      loss_fn=distillation_loss(teacher, config.temperature, config.alpha))
        histories[label] = [entry["val_accuracy"] for entry in outcome.history]
    target = histories["random"][-1]
    reached = next((epoch for epoch, value in enumerate(histories["copy"], 1) if value >= target), None)
    held = reached is not None and reached <= EPOCHS / 2
    print(f"{name} thinner copy ({width}): random start {target:.4f} after {EPOCHS} epochs; the copy reached it "
          f"after {reached} epoch(s)")
    return (f"| {name} → {_describe(student_architecture)} | {target:.2%} | {histories['copy'][0]:.2%} | "
            f"{reached if reached is not None else f'not in {EPOCHS}'} | {'held' if held else 'missed'} |")


def main() -> None:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    write_dataset(load_digits_dataset(), OUT)
    splits = load_splits(OUT / "dataset.npz")
    teachers = {name: train_reference(name, splits) for name in ("mlp", "small_cnn")}
    rows = [distill_row(name, teachers[name][0], teachers[name][1], settings, splits) for name, settings in RUNS]
    convergence = [convergence_row(name, teachers[name][0], teachers[name][1], width, splits)
                   for name, width in (("mlp", 0.25), ("small_cnn", 0.45))]
    body = (f"Machine: {machine()}. Teachers: the reference models (bench/reference_models.py) trained on the "
            f"digits; each student trained {EPOCHS} epochs on {SEEDS} seeds with the recipe's defaults "
            f"(temperature 4, alpha 0.7, AdamW 3e-3, cosine), and the same student on the labels alone with the "
            f"same budget and seeds. Target: ≥ 97% of the teacher's accuracy and at least the no-teacher "
            f"baseline, at ≤ 1/4 of the teacher's parameters.\n\n"
            "| teacher (params) | student (params, ratio) | teacher acc | student acc (mean ± std) | "
            "no teacher (mean ± std) | student / teacher | gain (points) | target |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"Thinner copy against a random start, both distilled with the same settings: the epochs the copy "
            f"needs to reach the random start's accuracy after {EPOCHS} epochs (target: ≤ half).\n\n"
            "| teacher → student | random start after all epochs | copy after 1 epoch | copy's epochs to match | "
            "target |\n|---|---|---|---|---|\n" + "\n".join(convergence) + "\n")
    write_results("Distill", body)
    print(body)


if __name__ == "__main__":
    main()
