"""Issue-10 GPU parallelize target, where a GPU is lent: the recipe's GPU plan search on a ResNet-18-class model
(224x224 colour images, 1000 classes) against fp32 eager at batch 256 measured in the same run, both timed from
pinned host memory to synchronised outputs. Writes the "Parallelize (GPU)" section of bench/RESULTS.md.

    python bench/parallelize_gpu.py        # a few minutes on one GPU; needs PyTorch only

Anchor (H200, PyTorch 2.11): fp32 12.0 ms -> fp16 channels-last 5.4 ms -> + torch.compile 3.6 ms per batch of 256;
a second stream overlapping copies 1.2x. Target: >= 3x throughput.
"""
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import write_results  # noqa: E402
from optimizers.configs.parallelize import ParallelizeConfig  # noqa: E402
from optimizers.measure.inference import latency_ms  # noqa: E402
from optimizers.recipes.parallelize.cuda_plans import CudaServer, prepared_module  # noqa: E402
from optimizers.recipes.parallelize.recipe import parallelize  # noqa: E402
from optimizers.reporters import NullReporter  # noqa: E402
from optimizers.zoo.models import build_model  # noqa: E402

RESNET18 = {"block": "basic", "layers": [2, 2, 2, 2], "small_input": False, "in_channels": 3, "image_size": 224,
            "num_classes": 1000}
BATCH = 256


def search_against_baseline(architecture: dict = RESNET18, batch: int = BATCH, search_seconds: float = 600.0,
                            repeats: int = 20, try_compile: bool = True) -> dict:
    """fp32 eager at `batch` and the recipe's GPU plan search on the same ResNet, measured in one run; also called by
    bench/gpu_check.py. Returns the model, its host batch, the baseline's latency and rate, the search's
    `plan_search` extras and the seconds the search took."""
    if not torch.cuda.is_available():
        sys.exit("bench/parallelize_gpu.py needs a CUDA GPU")
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model("resnet", architecture).eval()
    size, channels = architecture["image_size"], architecture["in_channels"]
    example = torch.rand(1, channels, size, size)
    host = example.expand(batch, channels, size, size).contiguous()
    baseline = latency_ms(CudaServer(prepared_module(model, "fp32", device, {}), "fp32", host, device), host,
                          repeats=30, warmup=5)
    config = ParallelizeConfig(device="cuda", batch_sizes=tuple(sorted({1, max(1, batch // 4), batch})),
                               try_compile=try_compile, repeats=repeats, search_seconds=search_seconds)
    started = time.perf_counter()
    found = parallelize(model, None, config, NullReporter(), example=example).extras["plan_search"]
    return {"model": model, "host_batch": host, "baseline": baseline, "baseline_rate": batch * 1000 / baseline["p50"],
            "found": found, "seconds": time.perf_counter() - started}


def main() -> None:
    searched = search_against_baseline()
    baseline, baseline_rate, found, seconds = (searched[key] for key in ("baseline", "baseline_rate", "found",
                                                                         "seconds"))
    plan = found["plan"]
    at_batch = {point["variant"]: point for point in found["points"] if point["batch"] == BATCH}
    rows = "\n".join(f"| {variant} | {point['p50_ms']:g} | {point['p95_ms']:g} | {point['throughput_per_s']:,.0f} | "
                     f"{point['throughput_per_s'] / baseline_rate:.2f}× |" for variant, point in at_batch.items())
    speedup = plan["throughput_per_s"] / baseline_rate
    body = (f"Machine: {found['device']}, torch {torch.__version__}. ResNet-18-class (224x224x3, 1000 classes, "
            f"untrained: timing does not depend on the weights). Baseline: fp32 eager at batch {BATCH}, "
            f"{baseline['p50']:g} ms p50 ({baseline_rate:,.0f} samples/s), measured in the same run. The recipe's "
            f"staged search took {seconds:.0f} s over {len(found['points'])} points. Chosen plan: {plan['variant']} "
            f"at batch {plan['batch']}, {plan['throughput_per_s']:,.0f} samples/s: {speedup:.2f}× the baseline "
            f"(target ≥ 3×: {'held' if speedup >= 3 else 'missed'}).\n\n"
            f"| way (batch {BATCH}) | p50 (ms) | p95 (ms) | samples/s | vs fp32 eager |\n|---|---|---|---|---|\n"
            + rows + "\n")
    write_results("Parallelize (GPU)", body)
    print(body)


if __name__ == "__main__":
    main()
