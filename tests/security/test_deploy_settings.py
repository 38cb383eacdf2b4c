"""Production settings pass Django's deployment check, and every response carries the security headers."""
import os
import subprocess
import sys

import pytest

from tests.paths import REPO_ROOT
from webapp.security_headers import POLICY

pytestmark = pytest.mark.django_db


def test_check_deploy_is_clean_over_https():
    env = {**os.environ, "SLIMFORGE_HTTPS": "1", "SLIMFORGE_DEBUG": "0"}
    finished = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stdout + finished.stderr


@pytest.mark.parametrize("path", ["/accounts/login/", "/models/"])
def test_every_response_carries_the_policy_and_nosniff(client, alice, path):
    client.force_login(alice)
    response = client.get(path)
    assert response["Content-Security-Policy"] == POLICY
    assert response["X-Content-Type-Options"] == "nosniff" and response["X-Frame-Options"] == "DENY"


def test_downloads_are_attachments(alice, client):
    from tests.factories import experiment_with_artifact

    experiment, artifact = experiment_with_artifact(alice)
    client.force_login(alice)
    response = client.get(f"/api/experiments/{experiment.pk}/artifacts/{artifact.pk}/")
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment;")
