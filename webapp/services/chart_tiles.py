"""What the first draw of a long run reads, kept up to date as its points are written.

For every chart series of an experiment, its point count (ChartSeries). For a long series (more points than the
first draw's limit, and one that is cut down when long: webapp.selectors.series.is_tiled), its buckets at the
level it is drawn at (ChartTile; webapp.selectors.downsample explains buckets and levels): at most
DEFAULT_LIMIT / POINTS_PER_BUCKET of them, whatever the series' length. A batch of points joins the series' last
bucket or two; when a series first gets long, its buckets are made from the points stored; when it outgrows its
level, neighbours join into the level above and the old level's rows go. So a batch costs one statement for the
counts and, where a series is long, one for its buckets; the first draw of any run reads at most 500 rows a series.

Called by events_record inside its transaction, which holds the experiment's row lock: one writer per experiment
at a time, so the counts returned here are the counts before and after this batch.
"""
from django.db import connection

from webapp.models import ChartSeries, ChartTile, Event
from webapp.selectors.downsample import DEFAULT_LIMIT, Extremes, Point, buckets_of, draw_level, regroup
from webapp.selectors.series import BUCKET_COLUMNS, extremes_of, is_tiled

_SERIES = ChartSeries._meta.db_table
_TILES = ChartTile._meta.db_table
_COUNT_SQL = f"""
    INSERT INTO {_SERIES} AS s (experiment_id, series, kind, count)
    SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::bigint[])
    ON CONFLICT (experiment_id, series, kind) DO UPDATE SET count = s.count + EXCLUDED.count
    RETURNING series, kind, count
"""
_POINTS_SQL = (f"SELECT seq, x, y FROM {Event._meta.db_table} "
               "WHERE experiment_id = %s AND series = %s AND kind = %s ORDER BY seq")
_READ_SQL = (f"SELECT bucket, {', '.join(BUCKET_COLUMNS)} FROM {_TILES} "
             "WHERE experiment_id = %s AND series = %s AND kind = %s AND level = %s")
_DELETE_SQL = f"DELETE FROM {_TILES} WHERE experiment_id = %s AND series = %s AND kind = %s AND level = %s"
_TYPES = ["text", "text", "smallint", "bigint", "bigint", *(["bigint", "float8", "float8"] * 4)]
# A stored bucket (t) holds earlier points than the batch's part of it (EXCLUDED): the rule of Extremes.then.
_MERGE = ", ".join(
    ["count = t.count + EXCLUDED.count", *(f"last_{f} = EXCLUDED.last_{f}" for f in ("seq", "x", "y"))]
    + [f"{part}_{f} = CASE WHEN EXCLUDED.{part}_y {op} t.{part}_y THEN EXCLUDED.{part}_{f} ELSE t.{part}_{f} END"
       for part, op in (("low", "<"), ("high", ">")) for f in ("seq", "x", "y")]
)
_WRITE_SQL = f"""
    INSERT INTO {_TILES} AS t (experiment_id, series, kind, level, bucket, {", ".join(BUCKET_COLUMNS)})
    SELECT %s, * FROM unnest({", ".join(f"%s::{type_}[]" for type_ in _TYPES)})
    ON CONFLICT (experiment_id, series, kind, level, bucket) DO UPDATE SET {_MERGE}
"""


def chart_tiles_record(*, experiment_id: int, points: list[tuple[str, str, int, float, float]]) -> None:
    """Count and bucket a batch of chart points, each (series, kind, seq, x, y), given in seq order and already
    stored as events."""
    by_series: dict[tuple[str, str], list[Point]] = {}
    for series, kind, seq, x, y in points:
        by_series.setdefault((series, kind), []).append((seq, x, y))
    if not by_series:
        return
    keys = list(by_series)
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_SQL, [experiment_id, [s for s, _ in keys], [k for _, k in keys],
                                    [len(by_series[key]) for key in keys]])
        counts = {(series, kind): count for series, kind, count in cursor.fetchall()}
        rows = []
        for key, batch in by_series.items():
            after = counts[key]
            if after > DEFAULT_LIMIT and is_tiled(*key):
                level, buckets = _buckets(cursor, experiment_id, key, batch, after - len(batch))
                rows += [(*key, level, b, bucket) for b, bucket in buckets.items()]
        if rows:
            cursor.execute(_WRITE_SQL, [experiment_id, *_columns(rows)])


def _buckets(cursor, experiment_id: int, key: tuple[str, str], batch: list[Point],
             before: int) -> tuple[int, dict[int, Extremes]]:
    """The buckets to write for a long series' batch: the batch's part of them (joined to the stored ones by
    _WRITE_SQL), or, where the series just got long or outgrew its level, all of them at its new level."""
    level = draw_level(before + len(batch), DEFAULT_LIMIT)
    if before <= DEFAULT_LIMIT:  # just got long: its points are stored, this batch's included
        cursor.execute(_POINTS_SQL, [experiment_id, *key])
        return level, buckets_of(cursor.fetchall(), level)
    old_level = draw_level(before, DEFAULT_LIMIT)
    if old_level == level:
        return level, buckets_of(batch, level, start=before)
    cursor.execute(_READ_SQL, [experiment_id, *key, old_level])
    stored = {b: extremes_of(values) for b, *values in cursor.fetchall()}
    for b, bucket in buckets_of(batch, old_level, start=before).items():
        stored[b] = stored[b].then(bucket) if b in stored else bucket
    cursor.execute(_DELETE_SQL, [experiment_id, *key, old_level])
    return level, regroup(stored, level - old_level)


def _columns(rows) -> list[list]:
    """The rows as one list per column, for unnest."""
    columns = [[] for _ in _TYPES]
    for series, kind, level, b, bucket in rows:
        values = (series, kind, level, b, bucket.count, *(v for point in bucket.points() for v in point))
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns
