"""Container and unit health probe for AutoTrader services (standard library only).

Usage::

    python healthcheck.py http://127.0.0.1:9108/health   # the robot's health endpoint
    python healthcheck.py http://127.0.0.1:8050/healthz  # the dashboard
    python healthcheck.py tcp://kafka:9092               # a TCP service answers (the signal engine's broker)

With no argument the URL comes from ``AUTOTRADER_HEALTH_URL`` (default: the robot's
``http://127.0.0.1:9108/health``). An HTTP probe is healthy on a 2xx answer within 3 s; when
``AUTOTRADER_API_TOKEN`` is set it is sent as ``Authorization: Bearer``. Exit 0 healthy, 1 not,
with one line saying why (Docker keeps it in ``docker inspect``).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:9108/health"
TIMEOUT_S = 3.0


def probe(url: str) -> str | None:
    """None when ``url`` answers healthily, else the reason."""
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        if not parts.hostname or not parts.port:
            return f"{url}: expected tcp://HOST:PORT"
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_S):
                return None
        except OSError as e:
            return f"{url}: {e}"
    if parts.scheme not in ("http", "https"):
        return f"{url}: expected an http://, https:// or tcp:// URL"
    request = urllib.request.Request(url)  # noqa: S310 - the scheme is checked above
    if token := os.environ.get("AUTOTRADER_API_TOKEN"):
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as e:
        return f"{url}: HTTP {e.code}"
    except (OSError, ValueError) as e:
        return f"{url}: {e}"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("AUTOTRADER_HEALTH_URL", DEFAULT_URL)
    reason = probe(url)
    if reason is None:
        print(f"healthy: {url}")  # noqa: T201
        return 0
    print(f"unhealthy: {reason}")  # noqa: T201
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
