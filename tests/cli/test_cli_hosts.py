"""`slimforge submit --hosts N` asks for a job on N workers at once: the server gets the number, checks it by name,
and keeps it on the experiment (no worker is needed: a job on several hosts waits in the outbox for them)."""
import json

import pytest

from tests.cli.test_cli_live import _cli, _logged_in
from tests.webapp.services.test_multi_host import _trainable_model
from tests.webapp.services.test_rerun import _digits
from webapp.models import Experiment

pytestmark = pytest.mark.django_db(transaction=True)


def test_submit_passes_the_number_of_hosts(web_server, alice, tmp_path):
    model, dataset = _trainable_model(alice), _digits(alice)
    _logged_in(tmp_path, web_server)
    anywhere = _cli(tmp_path, "submit", str(model.pk), "prune", "--dataset", str(dataset.pk), "--hosts", "2",
                    check=False)
    assert anywhere.returncode != 0 and "hosts" in anywhere.stderr and "same devices" in anywhere.stderr

    done = _cli(tmp_path, "submit", str(model.pk), "prune", "--dataset", str(dataset.pk), "--config",
                json.dumps({"method": "unstructured", "epochs": 1}), "--run-on", "cpu", "--hosts", "2")
    assert "that take multi-host jobs (SLIMFORGE_WORKER_HOST_ADDRESS): none is online" in done.stdout, done.stdout
    experiment = Experiment.objects.get(owner=alice)
    assert experiment.hosts == 2 and experiment.device_shape == "cpu"

    _cli(tmp_path, "submit", str(model.pk), "prune", "--dataset", str(dataset.pk), "--run-on", "cpu")
    assert sorted(Experiment.objects.values_list("hosts", flat=True)) == [1, 2]  # one by default
