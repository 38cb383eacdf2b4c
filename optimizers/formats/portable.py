"""Models that travel by pickle to spawned replicas (GPU ranks, other hosts), inside a job's work.

A recipe's hooks hold the job's own model (distill's teacher, the original a pruned model is matched to), and
torch.save of the work pickles them. pickle has no way of its own for a TorchScript module, so `picklable()` teaches
it one: the module travels as the bytes torch.jit.save writes and is loaded again on arrival, on the arriving
replica's GPU if it was on a GPU (`arriving_on`), else on the CPU. (An ONNX model carries its file's bytes the same
way: optimizers.formats.onnx_model.OnnxModel.__reduce__.)
"""
import contextlib
import copyreg
import io

import torch

_arrival = torch.device("cpu")  # where a GPU module that arrives is loaded: the replica's own device


def picklable() -> None:
    """Make TorchScript modules picklable in this process (idempotent)."""
    copyreg.pickle(torch.jit.RecursiveScriptModule, _reduce_script)


@contextlib.contextmanager
def arriving_on(device: torch.device):
    """While a replica loads its work: GPU modules in it go to `device`."""
    global _arrival
    before, _arrival = _arrival, device
    try:
        yield
    finally:
        _arrival = before


def _reduce_script(module: torch.jit.RecursiveScriptModule):
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    on_gpu = any(tensor.is_cuda for tensor in [*module.parameters(), *module.buffers()])
    return _script_from_bytes, (buffer.getvalue(), module.training, on_gpu)


def _script_from_bytes(data: bytes, training: bool, on_gpu: bool) -> torch.jit.RecursiveScriptModule:
    module = torch.jit.load(io.BytesIO(data), map_location=_arrival if on_gpu else torch.device("cpu"))
    return module.train(training)
