"""What the plan search hands the user: the plan as JSON and a runnable Python file that serves the saved model
with it (batching requests, the thread count, the memory format, compiled or not)."""
import json
from typing import Any

import torch

from optimizers.recipes.parallelize.search import Setting

PLAN_FILE, SNIPPET_FILE = "plan.json", "serve_plan.py"


def plan_json(extras: dict[str, Any]) -> str:
    return json.dumps(extras, indent=2, allow_nan=False) + "\n"


def serving_snippet(setting: Setting, example: torch.Tensor) -> str:
    channels_last = setting.variant == "channels_last"
    compiled = setting.variant == "compiled"
    shape = list(example.shape[1:])
    dtype = str(example.dtype).removeprefix("torch.")
    return f'''"""Serve the optimized model with the plan Slimforge measured on its worker:
{setting.variant}, {setting.threads} thread(s), batches of {setting.batch}. Run it beside model.pt2 or model.pt:

    python serve_plan.py
"""
from pathlib import Path

import torch

THREADS, BATCH, CHANNELS_LAST, COMPILED = {setting.threads}, {setting.batch}, {channels_last}, {compiled}
HERE = Path(__file__).resolve().parent


def load_model():
    if (HERE / "model.pt2").exists():
        model = torch.export.load(str(HERE / "model.pt2")).module()
    else:
        model = torch.jit.load(str(HERE / "model.pt")).eval()
    if CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if COMPILED else model


def serve(model, samples: list[torch.Tensor]) -> list[torch.Tensor]:
    """One output per sample; samples are run in batches of BATCH, as the plan measured."""
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(samples), BATCH):
            batch = torch.stack(samples[start:start + BATCH])
            if CHANNELS_LAST:
                batch = batch.contiguous(memory_format=torch.channels_last)
            outputs.extend(model(batch))
    return outputs


if __name__ == "__main__":
    torch.set_num_threads(THREADS)
    model = load_model()
    samples = [torch.zeros({shape}, dtype=torch.{dtype}) for _ in range(2 * BATCH + 1)]
    results = serve(model, samples)
    print(f"served {{len(results)}} samples in batches of {{BATCH}} on {{THREADS}} thread(s)")
'''
