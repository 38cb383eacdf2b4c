"""The plan search on a GPU: which ways of running the model to try, in stages, and serving one batch each way.

On a GPU the thread count hardly matters and the ways multiply: precision (fp32, or fp16 / bf16 autocast), memory
format (channels-last), execution (eager, torch.compile, or a captured CUDA graph), and a second stream that copies
the next batch to the device while this one computes. Every combination would take minutes, so the search goes in
stages, each building on the fastest way so far within the budget: the precisions, then channels-last on the best
of them, then torch.compile or a CUDA graph on that, then the copy stream on the winner. A way is its parts joined
by "+", e.g. "fp16+channels_last+graph+streams".

Every call serves one batch as a server would: from pinned host memory to outputs on the device, synchronised.
"""
import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from optimizers.recipes.parallelize.search import Point

FP32, FP16, BF16 = "fp32", "fp16", "bf16"
CHANNELS_LAST, COMPILED, GRAPH, STREAMS = "channels_last", "compiled", "graph", "streams"
PRECISIONS = {FP32: None, FP16: torch.float16, BF16: torch.bfloat16}
STAGES = 7  # the most ways staged_variants yields: three precisions, channels-last, compiled, graph, streams
GRAPH_WARMUP = 3  # eager runs on a side stream before capture, as torch.cuda.graphs asks


@dataclass(frozen=True)
class CudaOptions:
    """Which stages apply, from the config and what the model and the GPU can do."""
    half_precision: bool
    bf16: bool  # the GPU runs bf16 (torch.cuda.is_bf16_supported())
    channels_last: bool
    compile: bool
    graphs: bool
    streams: bool


def parts(variant: str) -> list[str]:
    return variant.split("+")


def staged_variants(points: list[Point], budget_ms: float, options: CudaOptions) -> Iterator[str]:
    """The ways to try, one stage at a time; `points` grows as each way is measured (see search.search)."""
    yield FP32
    if options.half_precision:
        yield FP16
        if options.bf16:
            yield BF16
    if options.channels_last:
        yield _with(best_variant(points, budget_ms), CHANNELS_LAST)
    base = best_variant(points, budget_ms)
    if options.compile:
        yield _with(base, COMPILED)
    if options.graphs:
        yield _with(base, GRAPH)
    if options.streams:
        yield _with(best_variant(points, budget_ms), STREAMS)


def best_variant(points: list[Point], budget_ms: float) -> str:
    """The way of the fastest point within the budget so far (fp32 when none is)."""
    fitting = [point for point in points if point.within(budget_ms)]
    return max(fitting, key=lambda point: point.throughput).setting.variant if fitting else FP32


def _with(variant: str, part: str) -> str:
    return variant if part in parts(variant) else f"{variant}+{part}"


def prepared_module(model: torch.nn.Module, variant: str, device: torch.device,
                    cache: dict[tuple[bool, bool], Any]) -> Any:
    """The model on the device in the variant's memory format, compiled if asked; one copy per kind, reused."""
    chosen = parts(variant)
    key = (CHANNELS_LAST in chosen, COMPILED in chosen)
    if key not in cache:
        module = copy.deepcopy(model).to(device).eval()
        if key[0]:
            module = module.to(memory_format=torch.channels_last)
        cache[key] = torch.compile(module) if key[1] else module
    return cache[key]


class CudaServer:
    """Serves batches of one size one way: each call copies the host batch in, runs the model and synchronises.

    With "streams" each call also starts copying the next batch on a side stream while this one computes, so in
    steady state a call costs about max(copy, compute) instead of their sum.
    """

    def __init__(self, module: Any, variant: str, host_batch: torch.Tensor, device: torch.device) -> None:
        chosen = parts(variant)
        self.module, self.device = module, device
        self.dtype = PRECISIONS[chosen[0]]
        self.format = torch.channels_last if CHANNELS_LAST in chosen else torch.contiguous_format
        self.host = host_batch.pin_memory()
        self.streamed = STREAMS in chosen
        self.inputs = [torch.empty_like(self.host, device=device, memory_format=self.format)
                       for _ in range(2 if self.streamed else 1)]
        self.copy_stream = torch.cuda.Stream(device) if self.streamed else None
        self.ready = [torch.cuda.Event() for _ in self.inputs]
        self.turn, self.primed = 0, False
        self.run: Callable[[torch.Tensor], Any] = self._forward
        if GRAPH in chosen:
            self.run = self._captured()

    def __call__(self, _unused: Any = None) -> Any:
        """Serve the batch once; returns the outputs on the device (a CUDA graph overwrites them on its next call)."""
        if not self.streamed:
            self.inputs[0].copy_(self.host, non_blocking=True)
            output = self.run(self.inputs[0])
            torch.cuda.synchronize(self.device)
            return output
        now, upcoming = self.turn, 1 - self.turn
        if not self.primed:
            self._copy_ahead(now)
            self.primed = True
        torch.cuda.current_stream(self.device).wait_event(self.ready[now])
        self._copy_ahead(upcoming)  # overlaps the compute below
        output = self.run(self.inputs[now])
        torch.cuda.synchronize(self.device)
        self.turn = upcoming
        return output

    def _copy_ahead(self, slot: int) -> None:
        with torch.cuda.stream(self.copy_stream):
            self.inputs[slot].copy_(self.host, non_blocking=True)
            self.ready[slot].record(self.copy_stream)

    def _forward(self, inputs: torch.Tensor) -> Any:
        autocast = torch.autocast("cuda", dtype=self.dtype) if self.dtype is not None else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            return self.module(inputs)

    def _captured(self) -> Callable[[torch.Tensor], Any]:
        """Capture one forward pass on a static input; each call copies its batch there and replays the graph."""
        static = torch.empty_like(self.inputs[0])
        static.copy_(self.host)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP):
                self._forward(static)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.graph_output = self._forward(static)

        def replay(inputs: torch.Tensor) -> Any:
            static.copy_(inputs)  # device to device; nothing when the input already is the static buffer
            graph.replay()
            return self.graph_output

        return replay


def precision_differences(model: torch.nn.Module, example: torch.Tensor, device: torch.device,
                          precisions: list[str]) -> dict[str, float]:
    """Largest absolute difference of each half precision's first output from fp32's, on the example input."""
    module, inputs = copy.deepcopy(model).to(device).eval(), example.to(device)
    with torch.inference_mode():
        reference = _first(module(inputs)).float()
        differences = {}
        for name in precisions:
            with torch.autocast("cuda", dtype=PRECISIONS[name]):
                differences[name] = float((_first(module(inputs)).float() - reference).abs().max())
    return differences


def _first(output: Any) -> torch.Tensor:
    while isinstance(output, tuple | list):
        output = output[0]
    return output
