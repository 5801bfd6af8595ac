"""`python -m bench.wait_version URL VERSION [TIMEOUT]`: wait until /health answers 200 with
that `version` (the manual procedure's smoke test, the same check the automation makes)."""

import sys
import time
import urllib.error

from tests.support.http import get_json


def wait(url, version, timeout=120):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = get_json(url, timeout=2)
            if status == 200 and body.get("version") == version:
                return body
            last = body.get("version")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = exc
        time.sleep(0.1)
    raise SystemExit(f"{url} did not serve version {version} within {timeout}s (last: {last})")


if __name__ == "__main__":
    wait(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 120)
