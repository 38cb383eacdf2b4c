"""An experiment's chart series, read straight from the event table: the first draw of the page and the CSV.

A long job has 100,000 events and more, so nothing here makes a model instance per row: one SQL statement pulls
plain columns out of each JSON record, and long lines are downsampled (webapp.selectors.downsample) before they travel.
Callers check ownership first (webapp.selectors); these functions take an experiment id the user may read.

What is a point, here and in static/js/experiment.js alike: a resource or metric event with a string name, a
numeric value and a numeric t, or a progress event with numeric done and non-zero total (drawn in percent).
"""
import csv
import io
from collections.abc import Iterator

from django.db import connection

from optimizers.events import METRIC, PROGRESS, RESOURCE, STAGE, STATUS
from webapp.models import Event
from webapp.selectors.downsample import DEFAULT_LIMIT, downsample_indexes

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

# Columns: seq, kind, t, name (the series; a stage's name; a status), step, value, and a progress event's stage
# or a status event's error. One statement is one snapshot, and events are committed in seq order (events_record
# holds the experiment's row lock), so the rows it sees are a prefix of the stream: no holes below last_seq.
_CHART_SQL = f"""
    SELECT seq, kind, {_num('t')},
           CASE kind WHEN '{PROGRESS}' THEN '{PROGRESS}' WHEN '{STATUS}' THEN record->>'status'
                     ELSE record->>'name' END,
           CASE WHEN kind = '{METRIC}' THEN {_num('step')} END,
           {_VALUE},
           CASE kind WHEN '{PROGRESS}' THEN record->>'stage' WHEN '{STATUS}' THEN record->>'error' END
    FROM {_TABLE}
    WHERE experiment_id = %s AND ({_IS_POINT} OR kind IN ('{STAGE}', '{STATUS}'))
    ORDER BY seq
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


def experiment_series(*, experiment_id: int, limit: int = DEFAULT_LIMIT) -> dict:
    """{"last_seq", "t0", "series": {name: {"kind", "x", "y", "count", "downsampled"}}, "stages", "status"}.

    `last_seq` is the highest seq read: the page resumes its WebSocket after it. Time-based x (resources,
    progress) and stage marker t are seconds since t0, the first event's unix time; metric x is the step
    (the seq where a metric has none). `status` is the last status event read ({"status", "error"}), so a
    page drawn from this knows a job that ended after the page was rendered.
    """
    with connection.cursor() as cursor:
        cursor.execute(_CHART_SQL, [experiment_id])
        rows = cursor.fetchall()
        # Read after the rows: if they hold any event, the first one is among those already committed.
        cursor.execute(_FIRST_T_SQL, [experiment_id])
        first = cursor.fetchone()
    t0 = first[0] if first else None
    reader = _SeriesReader()
    for row in rows:
        reader.add(row)
    return {
        "last_seq": rows[-1][0] if rows else 0,
        "t0": t0,
        "series": {name: _shaped(points, t0, limit) for name, points in reader.series.items()},
        "stages": [{"t": _since(t, t0), "name": name, "seq": seq} for seq, t, name in reader.stages],
        "status": reader.status,
    }


class _SeriesReader:
    """Sorts rows of _CHART_SQL into series, stage markers and the last status, in seq order."""

    def __init__(self):
        self.series: dict[str, dict] = {}
        self.stages: list[tuple[int, float, str]] = []
        self.status: dict | None = None
        self._stage: str | None = None

    def add(self, row) -> None:
        seq, kind, t, name, step, value, extra = row
        if kind == STATUS:
            self.status = {"status": name, "error": extra or ""}
        elif kind == STAGE:
            self._mark_stage(seq, t, name)
        elif kind == PROGRESS:
            self._point(PROGRESS, PROGRESS, t, value)
            self._mark_stage(seq, t, extra)
        elif kind == RESOURCE:
            self._point(name, kind, t, value)
        elif name.startswith(SENSITIVITY_PREFIX):
            self._point("sensitivity", "bar", name[len(SENSITIVITY_PREFIX):], value)
        else:
            self._point(name, kind, seq if step is None else step, value)

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


def _shaped(points: dict, t0: float | None, limit: int) -> dict:
    kind, x, y = points["kind"], points["x"], points["y"]
    keep = range(len(x)) if kind == "bar" else downsample_indexes(x, y, limit)
    timed = kind in (RESOURCE, PROGRESS)
    return {
        "kind": kind,
        "x": [_since(x[i], t0) for i in keep] if timed else [x[i] for i in keep],
        "y": [y[i] for i in keep],
        "count": len(x),
        "downsampled": len(keep) < len(x),
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
