"""The deploy's webhook URL: refused when it breaks the grammar, and only scheme://host/... of it
is ever printed (its path or query is often the secret)."""

import pytest
from ansible_collections.maestro.deploy.plugins.filter.notify import notify_url_problems, url_shown

RULE = "an http:// or https:// URL with a host, no user:password@, no spaces or control characters"


@pytest.mark.parametrize("url, problems", [
    ("", []),
    (None, []),
    ("https://hooks.example/services/T0/B1/s3cret?x=1", []),
    ("http://127.0.0.1:9/x", []),
    ("https://ops:pw@hooks.example/x", [f"deploy_notify_url=https://hooks.example/... ({RULE})"]),
    ("ftp://hooks.example/x", [f"deploy_notify_url=(no URL) ({RULE})"]),
    ("https://hooks.example/a b", [f"deploy_notify_url=https://hooks.example/... ({RULE})"]),
])
def test_notify_url_problems(url, problems):
    assert notify_url_problems(url, "deploy_notify_url") == problems


def test_url_shown_keeps_neither_path_query_nor_password():
    assert url_shown("https://ops:pw@hooks.example:8443/t0ken?k=v") == "https://hooks.example:8443/..."
    assert url_shown("") == "(no URL)"


def test_url_scrub_hides_every_url_path_in_an_error_message():
    from ansible_collections.maestro.deploy.plugins.filter.notify import url_scrub

    msg = ("HTTP Error while fetching http://127.0.0.1:18765/services/T0/s3cretTOKEN?k=v: IncompleteRead; "
           "redirected to 'https://hooks.example/x/y'")
    assert url_scrub(msg) == ("HTTP Error while fetching http://127.0.0.1:18765/...: IncompleteRead; "
                              "redirected to 'https://hooks.example/...'")
    assert url_scrub(None) == ""
