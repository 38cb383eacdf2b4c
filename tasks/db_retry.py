"""The worker through a database restart: brief retries instead of a failed job.

A PostgreSQL that restarts (a failover, an upgrade, a crash) drops every connection. Django then raises
OperationalError or InterfaceError on the next query and keeps the broken connection until it is closed. The worker
closes it and tries again with growing pauses for up to `DB_OUTAGE_S` seconds; the job itself, in its sandbox, does
not need the database and goes on meanwhile.
"""
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)
T = TypeVar("T")
DB_ERRORS = (OperationalError, InterfaceError)
DB_OUTAGE_S = 120.0
PAUSES_S = (0.2, 0.5, 1.0, 2.0, 4.0)


def forget_connection() -> None:
    """Drop the (broken) connection, so the next query opens a new one."""
    try:
        connection.close()
    except DB_ERRORS:
        pass


def retrying(action: Callable[[], T], *, what: str, outage_s: float = DB_OUTAGE_S) -> T:
    """`action()`, again after a database error, until it works or `outage_s` has passed (then the error)."""
    deadline, tries = time.monotonic() + outage_s, 0
    while True:
        try:
            return action()
        except DB_ERRORS as exc:
            forget_connection()
            if time.monotonic() >= deadline:
                raise
            pause = PAUSES_S[min(tries, len(PAUSES_S) - 1)]
            if tries == 0:
                log.warning("the database is unreachable while %s (%s); trying again for up to %.0f s",
                            what, type(exc).__name__, outage_s)
            tries += 1
            time.sleep(pause)
