"""`python -m tests.skewed_worker SECONDS CELERY_ARGS...`: a Celery worker whose clock runs SECONDS behind, as a
worker on a machine whose clock drifted would.

Slimforge's own code and Django's read the time through django.utils.timezone.now, so that is the clock moved here,
for the main process and the pool it forks. The process's start time, which psutil reads from /proc, stays true: on
a machine whose clock drifted it would drift too. (libfaketime would move the whole process's clock, but Debian's
0.9.10 breaks Python's sleeps with EINVAL where it leaves the monotonic clock true, and hangs its waits where it does
not.)
"""
import sys
from datetime import timedelta

from django.utils import timezone


def main(argv: list[str]) -> int:
    behind = timedelta(seconds=float(argv[1]))
    true_now = timezone.now
    timezone.now = lambda: true_now() - behind
    print(f"skewed_worker: timezone.now() reads {timezone.now().isoformat()}, {behind.total_seconds():.0f} s behind",
          flush=True)
    from celery.__main__ import main as celery

    sys.argv = ["celery", *argv[2:]]
    return celery()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
