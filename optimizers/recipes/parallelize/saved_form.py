"""The model in the form the chosen plan runs it, where that form can be saved.

Channels-last: the result holds its weights in channels-last memory format, so every download (TorchScript, .pt2,
safetensors) carries it. Compiled: torch.compile's code lives only in the process that compiled it, so the plan
saves an ahead-of-time compiled package instead (AOTInductor: a .pt2 holding the generated code, built for this
worker's CPU and any batch size), which serve_plan.py loads when it is there. On a GPU the precision, memory format,
CUDA graph and copy stream are applied when the model is loaded (serve_plan.py): a CUDA graph cannot be saved.
"""
import tempfile
from pathlib import Path

import torch

from optimizers.errors import first_line

COMPILED_FILE = "model_compiled.pt2"
MAX_BATCH = 4096  # the largest batch the compiled package takes (the config's largest batch size)


CHANNELS_LAST_NOTE = "the downloads hold the weights in channels-last memory format, the form the plan runs"
GPU_NOTE = ("the downloads hold the model as uploaded: serve_plan.py applies the plan's precision, memory format, "
            "CUDA graph and copy stream when it loads the model (a CUDA graph cannot be saved)")


def compiled_form(model: torch.nn.Module, example: torch.Tensor) -> tuple[dict[str, bytes], list[str]]:
    """({COMPILED_FILE: the AOTInductor package}, notes), or ({}, why not) when it cannot be built here."""
    try:
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        program = torch.export.export(model, (example.expand(2, *example.shape[1:]).contiguous(),),
                                      dynamic_shapes=({0: batch},))
        with tempfile.TemporaryDirectory(prefix="slimforge-aoti-") as folder:
            path = torch._inductor.aoti_compile_and_package(program, package_path=str(Path(folder) / COMPILED_FILE))
            data = Path(path).read_bytes()
    except Exception as error:  # noqa: BLE001 - no C++ compiler, an op AOTInductor lacks: the plan still serves
        return {}, [f"the compiled form could not be saved ahead of time ({first_line(error)}); serve_plan.py "
                    "compiles the model with torch.compile when it loads it"]
    return {COMPILED_FILE: data}, [f"{COMPILED_FILE}: the model compiled ahead of time (AOTInductor) for this "
                                   f"worker's CPU and batches of 1 to {MAX_BATCH}; serve_plan.py loads it with "
                                   "torch._inductor.aoti_load_package"]
