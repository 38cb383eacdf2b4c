"""The event stream of an experiment: the database is the truth, the channel layer the fast path."""
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from optimizers import events
from webapp.models import Event, Experiment
from webapp.selectors.series import chart_point
from webapp.services.chart_tiles import chart_tiles_record

log = logging.getLogger(__name__)


# The channel-layer message a batch travels in; the consumer's `events_batch` handler receives it.
LIVE_BATCH = "events.batch"


def experiment_group(experiment_id: int) -> str:
    return f"experiment.{experiment_id}"


def _progress_fields(records: list[events.Event]) -> dict:
    fields = {}
    for record in records:
        if record["kind"] == events.PROGRESS and record.get("total"):
            fields["progress"] = min(1.0, record["done"] / record["total"])
            if record.get("stage"):
                fields["stage"] = record["stage"][:64]
        elif record["kind"] == events.STAGE:
            fields["stage"] = record["name"][:64]
    return fields


def events_record(*, experiment_id: int, records: list[events.Event]) -> list[events.Event]:
    """Stamp records with the next seqs, store them, then push the same batch to the live pages."""
    if not records:
        return []
    now = timezone.now().timestamp()
    with transaction.atomic():
        Experiment.objects.filter(pk=experiment_id).update(last_seq=F("last_seq") + len(records),
                                                           **_progress_fields(records))
        last = Experiment.objects.values_list("last_seq", flat=True).get(pk=experiment_id)
        stamped = [{"seq": last - len(records) + i + 1, "t": record.pop("t", now), **record}
                   for i, record in enumerate(records)]
        rows = Event.objects.bulk_create([_row(experiment_id, r) for r in stamped])
        chart_tiles_record(experiment_id=experiment_id,
                           points=[(e.series, e.kind, e.seq, e.x, e.y) for e in rows if e.series is not None])
        transaction.on_commit(lambda: _push_events(experiment_id, stamped))
    return stamped


def _row(experiment_id: int, record: events.Event) -> Event:
    series, x, y = chart_point(record["kind"], record) or (None, None, None)
    return Event(experiment_id=experiment_id, seq=record["seq"], kind=record["kind"], record=record,
                 series=series, x=x, y=y)


def _push_events(experiment_id: int, records: list[events.Event]) -> None:
    # A lost push is healed by the page's resume from its last seq.
    try:
        async_to_sync(get_channel_layer().group_send)(
            experiment_group(experiment_id), {"type": LIVE_BATCH, "events": records}
        )
    except Exception:
        log.warning("could not push events of experiment %s to the channel layer", experiment_id, exc_info=True)
