"""A transactional test's clean-up TRUNCATEs every table; the session's real Celery worker may be inside a heartbeat
transaction (its reaper's row locks) at that moment, and PostgreSQL then breaks the deadlock by failing the
TRUNCATE, which left the database unflushed for the next test. Production never TRUNCATEs: the clean-up is tried
again, a few times, on a deadlock only."""
import time

from django.core.management.base import CommandError
from django.db.utils import OperationalError
from django.test import TransactionTestCase

ATTEMPTS = 5
_flush = TransactionTestCase._fixture_teardown


def _is_deadlock(error: CommandError) -> bool:
    cause = error.__cause__
    return isinstance(cause, OperationalError) and "deadlock detected" in str(cause)


def _fixture_teardown_retrying_deadlocks(self) -> None:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _flush(self)
        except CommandError as error:
            if attempt == ATTEMPTS or not _is_deadlock(error):
                raise
            time.sleep(0.2 * attempt)


def install() -> None:
    TransactionTestCase._fixture_teardown = _fixture_teardown_retrying_deadlocks
