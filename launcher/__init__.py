"""The process supervisor of one machine: embedded PostgreSQL and Redis, Uvicorn and a Celery worker, or the tests.

It imports no Django (Django's settings read DATABASE_URL on import, so the servers must exist first) and nothing
of webapp, tasks or optimizers: it starts them as child processes. `python -m launcher --help` lists its commands.
"""
