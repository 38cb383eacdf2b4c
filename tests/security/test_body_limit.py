"""Red team, against the web server: bodies too big for their URL are refused as they stream in.

A real Uvicorn with Slimforge's application (`web_server`), raw sockets for the attacker: a declared length that
would fill the disk, a chunked body that never ends, a Content-Length that is not a number. Whatever the server took
before answering is counted: it must stay near the limit, not grow with what the attacker sends.
"""
import pytest
from django.conf import settings
from knox.models import AuthToken

from tests.http_raw import flood

pytestmark = pytest.mark.django_db(transaction=True)
SMALL = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
UPLOAD = settings.MAX_UPLOAD_BYTES
HUGE = 64 * 1024 ** 3  # 64 GiB: more than this machine's disk


@pytest.mark.parametrize("path", ["/api/models/", "/models/", "/accounts/login/", "/api/auth/token/", "/nowhere/"])
def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read(web_server, path):
    outcome = flood(web_server, path, declared=HUGE, total=HUGE, timeout=30)
    assert outcome.status == 413, outcome.answer[:300]
    assert b"over the limit of 4 MB" in outcome.answer
    assert outcome.sent_bytes < 64 * 1024 ** 2  # what socket buffers held before the answer, not gigabytes
    assert outcome.seconds < 10


@pytest.mark.parametrize("path", ["/api/models/", "/datasets/", "/accounts/login/"])
def test_a_chunked_body_without_end_is_cut_off_near_the_limit(web_server, path):
    outcome = flood(web_server, path, declared=None, total=HUGE, timeout=60)
    assert outcome.status == 413, outcome.answer[:300]
    assert outcome.sent_bytes < SMALL + 64 * 1024 ** 2


def test_a_content_length_that_is_not_a_number_is_a_400(web_server):
    outcome = flood(web_server, "/api/models/", declared="12abc", total=0, timeout=10)  # type: ignore[arg-type]
    assert outcome.status == 400  # Uvicorn refuses it itself; webapp.body_limit would under another server


def test_a_signed_in_user_may_send_an_upload_up_to_the_upload_limit(web_server, alice):
    _, token = AuthToken.objects.create(alice)
    auth = {"Authorization": f"Token {token}"}
    over = flood(web_server, "/api/models/", declared=UPLOAD + 2 * 1024 ** 2, total=HUGE, headers=auth, timeout=30)
    assert over.status == 413 and f"over the limit of {UPLOAD // 1024 ** 2 + 1} MB".encode() in over.answer
    # 6 MB of zeros: over what strangers may send, under the upload limit. It reaches the view, which answers
    # with what is wrong with it (not multipart), so the limit let it through.
    fits = flood(web_server, "/api/models/", declared=6 * 1024 ** 2, total=6 * 1024 ** 2, headers=auth, timeout=30)
    assert fits.status in (400, 415) and fits.sent_bytes >= 6 * 1024 ** 2, fits.answer[:300]
    # The same bytes from a stranger, or with a revoked or made-up token, stop at the small limit.
    for headers in ({}, {"Authorization": "Token 0123456789abcdef"}, {"Cookie": "sessionid=guessed"}):
        stranger = flood(web_server, "/api/models/", declared=6 * 1024 ** 2, total=6 * 1024 ** 2, headers=headers,
                         timeout=30)
        assert stranger.status == 413, headers
