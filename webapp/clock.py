"""The database's clock: the one clock that the web server and every worker, on however many machines, share.

A time that one process writes and another compares (a worker's heartbeat, the start and end of a run, an outbox
message's age) is read from here. Machines' own clocks drift apart: a worker whose clock ran a minute behind would
write heartbeats that every other worker reads as a minute old, count it offline and start its live job again.
"""
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import DateTimeField, Func


class ClockTimestamp(Func):
    """The database's time when the statement runs (a column's db_default). Not Now(): PostgreSQL's now() is when
    the enclosing transaction began, which a long transaction would make look old."""

    template = "clock_timestamp()"
    output_field = DateTimeField()


def db_ago(seconds: float):
    """`seconds` before the database's time, for a filter: compared inside the database, with no round trip."""
    return ClockTimestamp() - timedelta(seconds=seconds)


def db_now() -> datetime:
    """The database server's time now (aware, UTC), where Python needs the value itself. In a filter or an update,
    ClockTimestamp() or db_ago() save the round trip."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]
