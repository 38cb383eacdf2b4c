"""The worker's side of multi-host jobs, in-process: which workers take part, and the address a host is given."""
import pytest

from tasks import multihost, placement
from tests.factories import ready_model
from webapp.models import Experiment


@pytest.mark.django_db
def test_only_a_worker_with_an_address_takes_a_job_on_several_hosts(alice, settings):
    experiment = Experiment.objects.create(owner=alice, model=ready_model(alice), recipe="prune",
                                           config={"method": "unstructured"}, device_shape="cpu", hosts=2)
    settings.WORKER_HOST_ADDRESS = ""
    assert placement.does_not_fit(experiment, "cpu@a") == (
        "Worker cpu@a left it for another: it takes no part in jobs on several hosts (SLIMFORGE_WORKER_HOST_ADDRESS "
        "is not set there). It waits for a worker that does.")
    settings.WORKER_HOST_ADDRESS = "127.0.0.1"
    assert placement.does_not_fit(experiment, "cpu@a") == ""
    Experiment.objects.filter(pk=experiment.pk).update(hosts=1)
    experiment.refresh_from_db()
    settings.WORKER_HOST_ADDRESS = ""
    assert placement.does_not_fit(experiment, "cpu@a") == ""  # a job on one host is any worker's


def test_a_host_meets_the_others_over_the_interface_of_its_address(settings):
    settings.WORKER_HOST_ADDRESS = "127.0.0.1"
    assert multihost.interface_of("127.0.0.1") == "lo"
    hosts = multihost.further_host(1, 2, "10.0.0.5", 29500, "ab" * 32)
    assert hosts == {"count": 2, "node": 1, "address": "10.0.0.5", "port": 29500, "interface": "lo",
                     "wait_s": settings.HOSTS_WAIT_S, "secret": "ab" * 32}
    assert 0 < multihost.free_port("127.0.0.1") < 65536
    with pytest.raises(multihost.HostSetupError, match="SLIMFORGE_WORKER_HOST_ADDRESS 192.0.2.7 is not the address "
                                                       "of any network interface of worker host"):
        multihost.interface_of("192.0.2.7")
