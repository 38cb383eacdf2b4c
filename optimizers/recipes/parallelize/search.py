"""The plan search: which points to measure, when to stop a line of them, and which plan wins.

Pure logic around a `measure` function, so its rules are tested with made-up timings. For each way of running the
model (eager, channels-last, compiled; on a GPU, the stages of optimizers.recipes.parallelize.cuda_plans) and
each thread count, batch sizes grow until one of two things says the
larger ones cannot win: throughput stopped growing (less than `MIN_GAIN` over the best so far on that line), or
the p95 budget broke (a larger batch only takes longer). `measure` may also stop a point after a short probe
when it is clearly worse than the best point so far. The chosen plan is the measured point with the highest
throughput among those within the budget.
"""
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

MIN_GAIN = 0.05  # a larger batch that is not at least 5% faster per sample ends its line


@dataclass(frozen=True)
class Setting:
    variant: str  # CPU: "eager", "channels_last" or "compiled"; GPU: parts joined by "+" (see cuda_plans)
    threads: int
    batch: int
    replicas: int = 1  # processes serving at once, each with `threads` threads (CPU)


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p95_ms: float
    runs: int
    stopped_early: bool = False  # a short probe already showed it far behind the best point


@dataclass(frozen=True)
class Point:
    setting: Setting
    timing: Timing

    @property
    def throughput(self) -> float:
        """Samples per second at the median batch latency, over every replica serving at once."""
        if self.timing.p50_ms <= 0:
            return 0.0
        return self.setting.batch * self.setting.replicas * 1000.0 / self.timing.p50_ms

    def within(self, budget_ms: float) -> bool:
        return budget_ms <= 0 or self.timing.p95_ms <= budget_ms

    def to_dict(self) -> dict:
        return {**asdict(self.setting), **asdict(self.timing), "throughput_per_s": round(self.throughput, 2)}


@dataclass
class SearchOutcome:
    points: list[Point]
    chosen: Point | None
    notes: list[str]
    not_measured: list[Setting]


Measure = Callable[[Setting, float], Timing]  # (setting, best throughput so far) -> timing


class Unavailable(Exception):
    """`measure` raises it when a way of running the model cannot run here (a compile that fails): the search
    notes the reason and skips that way's remaining points."""


def search(variants: list[str] | Callable[[list[Point]], Iterable[str]], threads: list[int | tuple[int, int]],
           batches: list[int],
           measure: Measure, *, budget_ms: float = 0.0, seconds: float = 60.0,
           on_point: Callable[[Point], None] = lambda p: None,
           clock: Callable[[], float] = time.monotonic) -> SearchOutcome:
    """Measure each way's lines of batch sizes. `variants` is a list, or a function of the points measured so far
    that yields the ways one by one, each asked for after the previous one's points are in (the GPU's stages).
    `threads` lists thread counts, or (threads, replica processes) layouts."""
    run = _Search(measure, budget_ms, clock() + seconds, on_point, clock)
    for variant in (variants(run.points) if callable(variants) else variants):
        try:
            for layout in threads:
                run.line(variant, *(layout if isinstance(layout, tuple) else (layout, 1)), batches)
        except Unavailable as reason:
            run.notes.append(f"{variant} skipped: {reason}")
    if run.not_measured:
        run.notes.append(f"the search time ({seconds:g} s) ran out: {len(run.not_measured)} point(s) not measured")
    fitting = [point for point in run.points if point.within(budget_ms)]
    chosen = max(fitting, key=lambda point: point.throughput) if fitting else None
    return SearchOutcome(run.points, chosen, run.notes, run.not_measured)


@dataclass
class _Search:
    measure: Measure
    budget_ms: float
    deadline: float
    on_point: Callable[[Point], None]
    clock: Callable[[], float]
    points: list[Point] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_measured: list[Setting] = field(default_factory=list)

    def line(self, variant: str, thread_count: int, replicas: int, batches: list[int]) -> None:
        """Batch sizes in order on one way and layout, until a larger batch cannot win."""
        line_best = 0.0
        where = f"{variant}, {thread_count} thread(s)" + (f" × {replicas} replicas" if replicas > 1 else "")
        for index, batch in enumerate(batches):
            setting = Setting(variant, thread_count, batch, replicas)
            if self.clock() > self.deadline:
                self.not_measured.append(setting)
                continue
            point = Point(setting, self.measure(setting, self._best_within_budget()))
            self.points.append(point)
            self.on_point(point)
            more = index + 1 < len(batches)
            if not point.within(self.budget_ms):
                if more:
                    self.notes.append(f"{where}: batch {batch} broke the p95 budget "
                                      f"({point.timing.p95_ms:g} ms > {self.budget_ms:g} ms); larger batches skipped")
                return
            if point.throughput < line_best * (1 + MIN_GAIN):
                if more:
                    self.notes.append(f"{where}: batch {batch} was not {MIN_GAIN:.0%} "
                                      "faster per sample than a smaller one; larger batches skipped")
                return
            line_best = max(line_best, point.throughput)

    def _best_within_budget(self) -> float:
        """The throughput a new point must come near to be timed in full: only a point that could be chosen counts."""
        return max((p.throughput for p in self.points if p.within(self.budget_ms)), default=0.0)
