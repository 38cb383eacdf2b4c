"""The Celery app. The web process imports only this object, to enqueue tasks by name."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("slimforge")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Only workers import the task code and the heartbeat (the web process enqueues by name and never loads them).
app.conf.include = ["tasks.entrypoints", "tasks.heartbeat"]

INSPECT_MODEL = "slimforge.inspect_model"
RUN_EXPERIMENT = "slimforge.run_experiment"
PREPARE_DATASET = "slimforge.prepare_dataset"
JOIN_EXPERIMENT = "slimforge.join_experiment"  # a further host of a multi-host experiment
