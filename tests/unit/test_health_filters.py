"""The health check's expectations (healthcheck_expect with {revision}), the verdict on an
answer, and the one-line account of the last answer a failure message gives."""

import pytest
from ansible_collections.maestro.deploy.plugins.filter.health import (
    health_answer,
    health_expectations,
    health_mismatches,
)

pytestmark = pytest.mark.unit


def test_placeholders_stand_for_the_commit_and_version():
    assert health_expectations({"revision": "{revision}", "status": "ok", "v": "app-{version}"}, "abc123", "v2") == {
        "revision": "abc123", "status": "ok", "v": "app-v2"}
    assert health_expectations(None, "abc") == {}
    with pytest.raises(ValueError):
        health_expectations(["revision"], "abc")


@pytest.mark.parametrize("answer, wanted, wrong", [
    ({"status": 200, "content": "{}"}, {}, []),                            # no expectation: a 200 is enough
    ({"status": 200, "content": "not json"}, {}, []),
    ({"status": 503, "content": "{}"}, {}, ["status 503, expected 200"]),
    ({"status": -1, "msg": "Connection refused"}, {}, ["status -1, expected 200"]),
    ({"status": 200, "json": {"revision": "abc"}}, {"revision": "abc"}, []),
    ({"status": 200, "json": {"revision": "old"}}, {"revision": "abc"}, ["revision=old, expected abc"]),
    ({"status": 200, "json": {"status": "ok"}}, {"revision": "abc"}, ["revision=(missing), expected abc"]),
    ({"status": 200, "content": "OK"}, {"revision": "abc"}, ["the body is not a JSON object (revision expected)"]),
    ({"status": 200, "json": {"ready": True, "n": 3}}, {"ready": "true", "n": "3"}, []),
])
def test_health_mismatches(answer, wanted, wrong):
    assert health_mismatches(answer, wanted) == wrong


def test_the_last_answer_shows_status_and_the_first_200_bytes():
    cut = "x" * 200
    assert health_answer({"status": 500, "content": "x" * 300}) == 'status 500, body "%s" (cut at 200 bytes)' % cut
    assert health_answer({"status": 200, "content": '{"status":"ok"}'}) == 'status 200, body "{\\"status\\":\\"ok\\"}"'
    assert health_answer({"status": -1, "msg": "Request failed: <urlopen error [Errno 111] Connection refused>"}) == (
        "no HTTP answer (Request failed: <urlopen error [Errno 111] Connection refused>)")
