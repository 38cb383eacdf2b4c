"""Chart series counts and buckets kept as points are written (webapp.services.chart_tiles), and those of the
events already stored filled in by the same rules (the SQL below is the rule as it stood when this migration was
written; a test holds it equal to the writer)."""
import django.db.models.deletion
from django.db import migrations, models

# Every point series with its count; a series cut down when long (not progress, not sensitivity/…) and longer than
# 2,000 points gets its buckets at the level it is drawn at: the smallest level L with 2^L · 500 buckets >= its
# count; a point's bucket is its number in the series shifted right by L. Each bucket's first and last point are
# those of smallest and largest seq, its lowest and highest the earliest of the smallest and largest y (arrays
# compare element by element; a seq is exact in a float8 up to 2^53).
BACKFILL = """
    INSERT INTO webapp_chartseries (experiment_id, series, kind, count)
    SELECT experiment_id, series, kind, count(*) FROM webapp_event WHERE series IS NOT NULL GROUP BY 1, 2, 3;

    INSERT INTO webapp_charttile (experiment_id, series, kind, level, bucket, count, first_seq, first_x, first_y,
                                  last_seq, last_x, last_y, low_seq, low_x, low_y, high_seq, high_x, high_y)
    SELECT experiment_id, series, kind, level, n >> level, count(*),
           (min(ARRAY[seq, x, y]))[1], (min(ARRAY[seq, x, y]))[2], (min(ARRAY[seq, x, y]))[3],
           (max(ARRAY[seq, x, y]))[1], (max(ARRAY[seq, x, y]))[2], (max(ARRAY[seq, x, y]))[3],
           (min(ARRAY[y, seq, x]))[2], (min(ARRAY[y, seq, x]))[3], (min(ARRAY[y, seq, x]))[1],
           -(max(ARRAY[y, -seq, x]))[2], (max(ARRAY[y, -seq, x]))[3], (max(ARRAY[y, -seq, x]))[1]
    FROM (
        SELECT p.*, (SELECT min(b) FROM generate_series(0, 50) b WHERE (1::bigint << b) * 500 >= total) AS level
        FROM (
            SELECT experiment_id, series, kind, seq::float8 AS seq, x, y,
                   row_number() OVER w - 1 AS n, count(*) OVER w AS total
            FROM webapp_event
            WHERE series IS NOT NULL AND kind <> 'progress' AND left(series, 12) <> 'sensitivity/'
            WINDOW w AS (PARTITION BY experiment_id, series, kind ORDER BY seq
                         ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
        ) p
        WHERE total > 2000
    ) q
    GROUP BY experiment_id, series, kind, level, n >> level;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('webapp', '0007_event_chart_point'),
    ]

    operations = [
        migrations.CreateModel(
            name='ChartSeries',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('series', models.TextField()),
                ('kind', models.CharField(max_length=16)),
                ('count', models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name='ChartTile',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('series', models.TextField()),
                ('kind', models.CharField(max_length=16)),
                ('level', models.SmallIntegerField()),
                ('bucket', models.BigIntegerField()),
                ('count', models.BigIntegerField()),
                ('first_seq', models.BigIntegerField()),
                ('first_x', models.FloatField()),
                ('first_y', models.FloatField()),
                ('last_seq', models.BigIntegerField()),
                ('last_x', models.FloatField()),
                ('last_y', models.FloatField()),
                ('low_seq', models.BigIntegerField()),
                ('low_x', models.FloatField()),
                ('low_y', models.FloatField()),
                ('high_seq', models.BigIntegerField()),
                ('high_x', models.FloatField()),
                ('high_y', models.FloatField()),
            ],
        ),
        migrations.AddIndex(
            model_name='event',
            index=models.Index(fields=['experiment', 'series', 'kind', 'seq'], name='event_series_seq'),
        ),
        migrations.AddField(
            model_name='chartseries',
            name='experiment',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='chart_series', db_index=False, to='webapp.experiment'),
        ),
        migrations.AddField(
            model_name='charttile',
            name='experiment',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='chart_tiles', db_index=False, to='webapp.experiment'),
        ),
        migrations.AddConstraint(
            model_name='chartseries',
            constraint=models.UniqueConstraint(fields=('experiment', 'series', 'kind'), name='chart_series_unique'),
        ),
        migrations.AddConstraint(
            model_name='charttile',
            constraint=models.UniqueConstraint(fields=('experiment', 'series', 'kind', 'level', 'bucket'), name='chart_tile_unique'),
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
