"""bench/RESULTS.md: each benchmark rewrites its own section and keeps the others."""
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_results(section: str, body: str) -> None:
    """Replace one `## section` of bench/RESULTS.md, keeping the others."""
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    parts = text.split("\n## ")
    kept = [parts[0]] + [p for p in parts[1:] if not p.startswith(section + "\n")]
    path.write_text("\n## ".join(kept).rstrip("\n") + f"\n\n## {section}\n\n{body}")


def cpu_name() -> str:
    """The CPU's model name, as the figures' machine line gives it."""
    return next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")), platform.processor() or "unknown CPU")


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
