"""Chart points as plain columns on Event, and the rows already stored filled in by the same rules
(webapp.selectors.series: the SQL below is the rule as it stood when this migration was written)."""
from django.db import migrations, models

_NUM = "(CASE WHEN jsonb_typeof(record->'{0}') = 'number' THEN (record->>'{0}')::float8 END)"
_IS_POINT = (
    "(jsonb_typeof(record->'t') = 'number' AND ((kind IN ('resource', 'metric') "
    "AND jsonb_typeof(record->'name') = 'string' AND jsonb_typeof(record->'value') = 'number') "
    f"OR (kind = 'progress' AND jsonb_typeof(record->'done') = 'number' AND {_NUM.format('total')} <> 0)))"
)
BACKFILL = f"""
    UPDATE webapp_event SET
        series = CASE WHEN kind = 'progress' THEN 'progress' ELSE record->>'name' END,
        x = CASE WHEN kind = 'metric' THEN COALESCE({_NUM.format('step')}, seq) ELSE {_NUM.format('t')} END,
        y = CASE WHEN kind = 'progress' THEN 100 * {_NUM.format('done')} / {_NUM.format('total')}
                 ELSE {_NUM.format('value')} END
    WHERE {_IS_POINT}
"""


class Migration(migrations.Migration):
    dependencies = [("webapp", "0006_chains_outbox_lineage")]

    operations = [
        migrations.AddField(model_name="event", name="series", field=models.TextField(blank=True, null=True)),
        migrations.AddField(model_name="event", name="x", field=models.FloatField(blank=True, null=True)),
        migrations.AddField(model_name="event", name="y", field=models.FloatField(blank=True, null=True)),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
