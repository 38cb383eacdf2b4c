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
{setting.variant}, {setting.threads} thread(s) in each of {setting.replicas} process(es), batches of {setting.batch}.
Run it beside model.pt2 or model.pt:

    python serve_plan.py
"""
import multiprocessing
from pathlib import Path

import torch

THREADS, BATCH, CHANNELS_LAST, COMPILED = {setting.threads}, {setting.batch}, {channels_last}, {compiled}
REPLICAS = {setting.replicas}  # processes serving at once, each with its own copy of the model
HERE = Path(__file__).resolve().parent


def load_model():
    if COMPILED and (HERE / "model_compiled.pt2").exists():
        return torch._inductor.aoti_load_package(str(HERE / "model_compiled.pt2"))  # compiled ahead of time
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


def _start_replica():
    global REPLICA_MODEL
    torch.set_num_threads(THREADS)
    REPLICA_MODEL = load_model()


def _serve_share(samples):
    return serve(REPLICA_MODEL, samples)


def serve_in_replicas(samples: list[torch.Tensor]) -> list[torch.Tensor]:
    """The samples in whole batches, dealt out to REPLICAS processes that serve at once; outputs in sample order."""
    batches = [samples[start:start + BATCH] for start in range(0, len(samples), BATCH)]
    with multiprocessing.get_context("spawn").Pool(REPLICAS, initializer=_start_replica) as pool:
        return [output for outputs in pool.map(_serve_share, batches) for output in outputs]


if __name__ == "__main__":
    samples = [torch.zeros({shape}, dtype=torch.{dtype}) for _ in range(2 * BATCH * REPLICAS + 1)]
    if REPLICAS > 1:
        results = serve_in_replicas(samples)
    else:
        torch.set_num_threads(THREADS)
        results = serve(load_model(), samples)
    print(f"served {{len(results)}} samples in batches of {{BATCH}} on {{REPLICAS}} process(es) of {{THREADS}} "
          "thread(s)")
'''


def cuda_serving_snippet(setting: Setting, example: torch.Tensor) -> str:
    """The GPU plan as a runnable file: autocast precision, channels-last, compiled or a CUDA graph, a copy stream."""
    chosen = setting.variant.split("+")
    precision = {"fp16": "torch.float16", "bf16": "torch.bfloat16"}.get(chosen[0], "None")
    shape = list(example.shape[1:])
    dtype = str(example.dtype).removeprefix("torch.")
    flags = {name: name in chosen for name in ("channels_last", "compiled", "graph", "streams")}
    return f'''"""Serve the optimized model with the plan Slimforge measured on its GPU:
{setting.variant}, batches of {setting.batch}. Run it beside model.pt2 or model.pt on a machine with CUDA:

    python serve_plan.py
"""
import contextlib
from pathlib import Path

import torch

BATCH, PRECISION = {setting.batch}, {precision}
CHANNELS_LAST, COMPILED = {flags["channels_last"]}, {flags["compiled"]}
GRAPH, STREAMS = {flags["graph"]}, {flags["streams"]}
HERE = Path(__file__).resolve().parent
DEVICE = torch.device("cuda")
FORMAT = torch.channels_last if CHANNELS_LAST else torch.contiguous_format


def load_model():
    if (HERE / "model.pt2").exists():
        model = torch.export.load(str(HERE / "model.pt2")).module()
    else:
        model = torch.jit.load(str(HERE / "model.pt"), map_location=DEVICE).eval()
    model = model.to(DEVICE)
    if CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if COMPILED else model


def forward(model, inputs):
    autocast = torch.autocast("cuda", dtype=PRECISION) if PRECISION else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        return model(inputs)


def runner(model, static):
    """Run the model on `static`; with GRAPH, captured once and replayed (the input must be copied into `static`)."""
    if not GRAPH:
        return lambda: forward(model, static)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            forward(model, static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = forward(model, static)
    return lambda: (graph.replay(), output)[1]


def serve(model, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    """Outputs (on the CPU) of each host batch of BATCH samples; with STREAMS the next batch is copied to the GPU
    on a side stream while this one computes."""
    static = torch.empty((BATCH, *batches[0].shape[1:]), dtype=batches[0].dtype, device=DEVICE, memory_format=FORMAT)
    run = runner(model, static)
    copier = torch.cuda.Stream()
    staged, outputs = [torch.empty_like(static) for _ in range(2)], []
    pinned = [batch.pin_memory() for batch in batches]
    with torch.cuda.stream(copier):
        staged[0].copy_(pinned[0], non_blocking=True)
    for index in range(len(pinned)):
        torch.cuda.current_stream().wait_stream(copier)
        static.copy_(staged[index % 2])
        if index + 1 < len(pinned):
            copier.wait_stream(torch.cuda.current_stream())  # the buffer it refills was read by this batch's copy
            with torch.cuda.stream(copier if STREAMS else torch.cuda.current_stream()):
                staged[(index + 1) % 2].copy_(pinned[index + 1], non_blocking=True)
        outputs.append(run().float().cpu())
    return outputs


if __name__ == "__main__":
    model = load_model()
    batches = [torch.zeros([BATCH, *{shape}], dtype=torch.{dtype}) for _ in range(4)]
    results = serve(model, batches)
    print(f"served {{len(results) * BATCH}} samples in batches of {{BATCH}} on {{torch.cuda.get_device_name()}}")
'''
