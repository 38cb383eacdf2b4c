"""An experiment's chart series, read straight from the event table: the first draw of the page and the CSV.

A long job has 100,000 events and more, so nothing here makes a model instance per row: the first draw reads the
plain columns each point got when it was written and, for a long line, the buckets of webapp.selectors.downsample
kept up to date as the points were written (webapp.services.chart_tiles); the CSV pulls its columns out of each
JSON record.
Callers check ownership first (webapp.selectors); these functions take an experiment id the user may read.

What is a point, here and in static/js/experiment.js alike: a resource or metric event with a string name, a
numeric value and a numeric t, or a progress event with numeric done and non-zero total (drawn in percent).
"""
import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from optimizers.events import METRIC, PROGRESS, RESOURCE, STAGE, STATUS
from webapp.models import ChartSeries, ChartTile, Event
from webapp.selectors.downsample import DEFAULT_LIMIT, Extremes, downsample_indexes, draw_level, regroup

SENSITIVITY_PREFIX = "sensitivity/"
CSV_COLUMNS = ("seq", "t", "kind", "name", "step", "value")
CSV_CHUNK_ROWS = 5000


def _num(key: str) -> str:
    # jsonb can hold anything a job sent; a cast of a non-number would fail the whole query.
    return f"(CASE WHEN jsonb_typeof(record->'{key}') = 'number' THEN (record->>'{key}')::float8 END)"


def _is_num(key: str) -> str:
    return f"jsonb_typeof(record->'{key}') = 'number'"


_TABLE = Event._meta.db_table
_IS_POINT = (
    f"({_is_num('t')} AND ("
    f"(kind IN ('{RESOURCE}', '{METRIC}') AND jsonb_typeof(record->'name') = 'string' AND {_is_num('value')})"
    f" OR (kind = '{PROGRESS}' AND {_is_num('done')} AND {_num('total')} <> 0)))"
)
_NAME = f"(CASE WHEN kind = '{PROGRESS}' THEN '{PROGRESS}' ELSE record->>'name' END)"
_VALUE = f"(CASE WHEN kind = '{PROGRESS}' THEN 100 * {_num('done')} / {_num('total')} ELSE {_num('value')} END)"

# The first draw reads what the event writer keeps for it (webapp.services.chart_tiles): each series' count, and
# for a long one its buckets (webapp.selectors.downsample), at most 500 rows however long the run. Everything else
# (short series, progress, stage and status events) comes from the event table by the (experiment, series, kind,
# seq) index, never by scanning the long series' points.
_COUNTS_SQL = f"SELECT series, kind, count FROM {ChartSeries._meta.db_table} WHERE experiment_id = %s"
# A bucket's stored columns in the order extremes_of reads them.
BUCKET_COLUMNS = ("count", *(f"{part}_{field}" for part in ("first", "last", "low", "high")
                             for field in ("seq", "x", "y")))
_TILES_SQL = f"""
    SELECT t.series, t.kind, t.bucket, {", ".join(f"t.{column}" for column in BUCKET_COLUMNS)}
    FROM {ChartTile._meta.db_table} t
    JOIN unnest(%s::text[], %s::text[], %s::int[]) AS l(series, kind, level)
      ON t.series = l.series AND t.kind = l.kind AND t.level = l.level
    WHERE t.experiment_id = %s
"""
# Columns: seq, kind, x, series (a point's; a stage's name; a status), y, and a progress event's stage or a status
# event's error, and a stage event's t.
_CHART_COLUMNS = f"""
    SELECT seq, kind, x,
           CASE kind WHEN '{STAGE}' THEN record->>'name' WHEN '{STATUS}' THEN record->>'status' ELSE series END,
           y,
           CASE kind WHEN '{PROGRESS}' THEN record->>'stage' WHEN '{STATUS}' THEN record->>'error' END,
           CASE WHEN kind = '{STAGE}' THEN {_num('t')} END
    FROM {_TABLE}
"""
_CHART_SQL = f"""
    {_CHART_COLUMNS}
    WHERE experiment_id = %s AND series IS NULL AND kind IN ('{STAGE}', '{STATUS}')
    UNION ALL
    {_CHART_COLUMNS}
    WHERE experiment_id = %s AND (series, kind) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
    ORDER BY 1
"""
_FIRST_T_SQL = f"SELECT {_num('t')} FROM {_TABLE} WHERE experiment_id = %s AND {_is_num('t')} ORDER BY seq LIMIT 1"
_CSV_SQL = f"""
    SELECT seq, record->>'t', kind, {_NAME}, record->>'step', {_VALUE}
    FROM {_TABLE}
    WHERE experiment_id = %s AND seq > %s AND seq <= %s AND {_IS_POINT} {{name_filter}}
    ORDER BY seq
    LIMIT %s
"""
_LAST_SEQ_SQL = f"SELECT COALESCE(MAX(seq), 0) FROM {_TABLE} WHERE experiment_id = %s"


def chart_point(kind: str, record: dict) -> tuple[str, float, float] | None:
    """(series, x, y) when the event is a chart point, else None: the rule the page's script follows too.

    A resource or metric event with a string name, a numeric value and a numeric t, or a progress event with
    numeric done and non-zero total (y in percent). x is t for resources and progress, the step for a metric
    (its seq when it has none). Called once per event as it is written (webapp.services.events)."""
    t = record.get("t")
    if not _is_number(t):
        return None
    if kind in (RESOURCE, METRIC) and isinstance(record.get("name"), str) and _is_number(record.get("value")):
        x = t if kind == RESOURCE else (record["step"] if _is_number(record.get("step")) else record["seq"])
        return record["name"], float(x), float(record["value"])
    done, total = record.get("done"), record.get("total")
    if kind == PROGRESS and _is_number(done) and _is_number(total) and total != 0:
        return PROGRESS, float(t), 100 * done / total
    return None


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_tiled(series: str, kind: str) -> bool:
    """Whether a series is drawn from buckets when long. Progress is read whole (a change of its stage marks a
    stage) and a sensitivity series is a bar per layer, never cut down."""
    return kind != PROGRESS and not series.startswith(SENSITIVITY_PREFIX)


def extremes_of(values) -> Extremes:
    """A bucket from its stored columns (BUCKET_COLUMNS): count, then seq, x, y of its first, last, lowest and
    highest point."""
    count, *points = values
    return Extremes(count, *(tuple(points[i:i + 3]) for i in range(0, 12, 3)))


def experiment_series(*, experiment_id: int, limit: int = DEFAULT_LIMIT) -> dict:
    """{"last_seq", "t0", "series": {name: {"kind", "x", "y", "count", "downsampled"}}, "stages", "status"}.

    At most `limit` points a series (no more than DEFAULT_LIMIT: the buckets are kept for that). `last_seq` is
    the highest seq read: the page resumes its WebSocket after it. Time-based x (resources, progress) and stage
    marker t are seconds since t0, the first event's unix time; metric x is the step (the seq where a metric has
    none). `status` is the last status event read ({"status", "error"}), so a page drawn from this knows a job
    that ended after the page was rendered.
    """
    if limit > DEFAULT_LIMIT:
        raise ValueError(f"limit must be at most {DEFAULT_LIMIT}, not {limit}")
    with _one_snapshot(), connection.cursor() as cursor:
        cursor.execute(_LAST_SEQ_SQL, [experiment_id])
        upto = cursor.fetchone()[0]
        cursor.execute(_COUNTS_SQL, [experiment_id])
        counts = {(name, kind): count for name, kind, count in cursor.fetchall()}
        long = {key: count for key, count in counts.items() if count > DEFAULT_LIMIT and is_tiled(*key)}
        rows = []
        if long:
            cursor.execute(_TILES_SQL, [[name for name, _ in long], [kind for _, kind in long],
                                        [draw_level(count, DEFAULT_LIMIT) for count in long.values()],
                                        experiment_id])
            rows = _bucket_rows(cursor.fetchall(), long, limit)
        short = [key for key in counts if key not in long]
        cursor.execute(_CHART_SQL, [experiment_id, experiment_id, [name for name, _ in short],
                                    [kind for _, kind in short]])
        rows = sorted(rows + cursor.fetchall(), key=lambda row: row[0])
        cursor.execute(_FIRST_T_SQL, [experiment_id])
        first = cursor.fetchone()
    t0 = first[0] if first else None
    reader = _SeriesReader()
    for row in rows:
        reader.add(row)
    counts_by_name = {name: count for (name, _), count in counts.items()}
    return {
        "last_seq": upto,
        "t0": t0,
        "series": {name: _shaped(points, t0, limit, counts_by_name.get(name))
                   for name, points in reader.series.items()},
        "stages": [{"t": _since(t, t0), "name": name, "seq": seq} for seq, t, name in reader.stages],
        "status": reader.status,
    }


@contextmanager
def _one_snapshot():
    """The statements inside read one snapshot of the database, so the counts, the buckets, the events and
    last_seq agree even while a job writes. Inside a caller's transaction (a test's), that transaction decides."""
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def _bucket_rows(tiles, long: dict[tuple[str, str], int], limit: int) -> list[tuple]:
    """The distinct points of the long series' buckets, joined up to the level `limit` asks for, as rows of
    _CHART_SQL."""
    stored: dict[tuple[str, str], dict[int, Extremes]] = {}
    for name, kind, b, *values in tiles:
        stored.setdefault((name, kind), {})[b] = extremes_of(values)
    rows = {}
    for (name, kind), buckets in stored.items():
        count = long[(name, kind)]
        up = draw_level(count, limit) - draw_level(count, DEFAULT_LIMIT)
        for bucket in regroup(buckets, up).values():
            for seq, x, y in bucket.points():
                rows[seq] = (seq, kind, x, name, y, None, None)
    return list(rows.values())


class _SeriesReader:
    """Sorts rows of _CHART_SQL into series, stage markers and the last status, in seq order."""

    def __init__(self):
        self.series: dict[str, dict] = {}
        self.stages: list[tuple[int, float, str]] = []
        self.status: dict | None = None
        self._stage: str | None = None

    def add(self, row) -> None:
        seq, kind, x, name, y, extra, stage_t = row
        if kind == STATUS:
            self.status = {"status": name, "error": extra or ""}
        elif kind == STAGE:
            self._mark_stage(seq, stage_t, name)
        elif name is None:
            return  # a progress event that is no point (no total, say)
        elif kind == PROGRESS:
            self._point(PROGRESS, PROGRESS, x, y)
            self._mark_stage(seq, x, extra)
        elif kind == RESOURCE:
            self._point(name, kind, x, y)
        elif name.startswith(SENSITIVITY_PREFIX):
            self._point("sensitivity", "bar", name[len(SENSITIVITY_PREFIX):], y)
        else:
            self._point(name, kind, int(x) if x.is_integer() else x, y)

    def _point(self, name: str, kind: str, x, y: float) -> None:
        series = self.series.get(name)
        if series is None:
            series = self.series[name] = {"kind": kind, "x": [], "y": []}
        series["x"].append(x)
        series["y"].append(y)

    def _mark_stage(self, seq: int, t: float | None, name: str | None) -> None:
        # A stage begins when its name changes, whether a stage event or a progress event says so.
        if name and name != self._stage and t is not None:
            self._stage = name
            self.stages.append((seq, t, name))


def _shaped(points: dict, t0: float | None, limit: int, count: int | None) -> dict:
    """A series as drawn. A long one comes already cut down to its buckets' points; progress (read whole) is cut
    down here, by the same buckets, which leave a series that fits in its limit as it is."""
    kind, x, y = points["kind"], points["x"], points["y"]
    keep = range(len(x)) if kind == "bar" else downsample_indexes(x, y, limit)
    timed = kind in (RESOURCE, PROGRESS)
    count = count if count is not None and kind != "bar" else len(x)
    return {
        "kind": kind,
        "x": [_since(x[i], t0) for i in keep] if timed else [x[i] for i in keep],
        "y": [y[i] for i in keep],
        "count": count,
        "downsampled": len(keep) < count,
    }


def _since(t: float, t0: float | None) -> float:
    return round(t - (t0 if t0 is not None else t), 3)


def series_csv(*, experiment_id: int, name: str | None = None, chunk_rows: int = CSV_CHUNK_ROWS) -> Iterator[str]:
    """The full series (never downsampled) as CSV text, a header then one piece per `chunk_rows` rows.

    Rows come in seq order, up to the last event stored when the download began, a page of rows per query
    (keyset on seq), so a 100,000-row file never sits in memory whole. `name` keeps one series' rows.
    """
    yield _csv_text([CSV_COLUMNS])
    name_filter, extra = (f"AND {_NAME} = %s", [name]) if name is not None else ("", [])
    sql = _CSV_SQL.format(name_filter=name_filter)
    upto = _last_seq(experiment_id)
    after = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [experiment_id, after, upto, *extra, chunk_rows])
            rows = cursor.fetchall()
        if not rows:
            return
        yield _csv_text(rows)
        after = rows[-1][0]


def _last_seq(experiment_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(_LAST_SEQ_SQL, [experiment_id])
        return cursor.fetchone()[0]


def _csv_text(rows) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
