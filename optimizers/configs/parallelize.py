"""Settings of the parallelize recipe (standard library only: the web validates forms with it).

The recipe searches for the fastest way to serve the model on the worker that runs it: batch sizes, intra-op
threads, channels-last memory and torch.compile (on a GPU: autocast precisions, CUDA graphs and a copy stream
instead of threads), each point measured for real (warm-up, repeated runs, p50 and
p95), under an optional p95 latency budget. It needs no dataset: it times the model on batches of its example
input.
"""
import dataclasses
from typing import ClassVar

from optimizers.configs.base import INTEGERS, RecipeConfig, setting
from optimizers.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class ParallelizeConfig(RecipeConfig):
    recipe: ClassVar[str] = "parallelize"

    device: str = setting(
        "auto", "Where to serve: auto takes the worker's GPU when it has one, else its CPU. On a GPU the search tries "
                "fp16/bf16 autocast, channels-last, torch.compile or a CUDA graph, and a copy stream, in stages; the "
                "thread counts are a CPU matter.", choices=DEVICES)
    batch_sizes: INTEGERS = setting(
        (1, 8, 32, 128), "Batch sizes to try, smallest first; a larger one is skipped once throughput stops "
                         "growing or the p95 budget is broken. Batch 1 is always measured: it is the baseline.",
        min=1, max=4096, min_items=1, max_items=12)
    threads: INTEGERS = setting(
        (1, 2), "Intra-op thread counts to try (capped at the cores this worker gives the job). One thread is "
                "always measured: it is the baseline.", min=1, max=256, min_items=1, max_items=8)
    replicas: INTEGERS = setting(
        (1, 2), "CPU: replica processes to try, each a copy of the model with one thread serving whole batches at once "
                "(often faster than threads for small models); capped at the cores this worker gives the job.",
        min=1, max=256, min_items=1, max_items=8)
    channels_last: bool = setting(
        True, "Also try channels-last memory format, for models that take 4-D image batches (often faster "
              "convolutions).")
    try_compile: bool = setting(
        False, "Also try torch.compile (inductor). It can be much faster, but compiling takes seconds to minutes "
               "per thread count and needs a C compiler on the worker.")
    half_precision: bool = setting(
        True, "GPU: also try fp16 and bf16 autocast (the report gives each one's largest output difference from "
              "fp32 on the example input).")
    cuda_graphs: bool = setting(
        True, "GPU: also try capturing the forward pass as a CUDA graph (one launch per batch instead of one per "
              "layer; the biggest gain for small models).")
    copy_streams: bool = setting(
        True, "GPU: also try a second CUDA stream that copies the next batch to the GPU while this one computes.")
    p95_budget_ms: float = setting(
        0.0, "Latency budget: the chosen plan is the highest throughput whose p95 batch latency is at most this "
             "many milliseconds. 0 sets no budget.", min=0.0, max=600_000.0)
    repeats: int = setting(20, "Timed runs per point, after a warm-up.", min=3, max=1000)
    search_seconds: float = setting(
        60.0, "Time for the whole search; points not reached by then are listed as not measured.",
        min=5.0, max=3600.0)

    def check_combination(self) -> None:
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise ConfigError("batch_sizes", "each batch size once, please")
        if len(set(self.threads)) != len(self.threads):
            raise ConfigError("threads", "each thread count once, please")
        if len(set(self.replicas)) != len(self.replicas):
            raise ConfigError("replicas", "each replica count once, please")
