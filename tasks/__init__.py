"""Celery app, task entry points, the sandbox that runs models in a subprocess, and the event bridge."""
