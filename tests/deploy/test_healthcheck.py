"""deploy/healthcheck.py, the probe the image and compose run: healthy only on a real answer."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.deploy.deployfiles import ROOT

PROBE = ROOT / "deploy" / "healthcheck.py"


class _Handler(BaseHTTPRequestHandler):
    seen_auth: list[str | None] = []

    def do_GET(self) -> None:
        _Handler.seen_auth.append(self.headers.get("Authorization"))
        status = 200 if self.path == "/health" else 503
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def _probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROBE), *args], capture_output=True, text=True, timeout=30, env=env or {}
    )


def test_healthcheck_http_200_is_healthy_and_sends_token(server):
    _Handler.seen_auth.clear()
    result = _probe(f"http://127.0.0.1:{server}/health", env={"AUTOTRADER_API_TOKEN": "t0ken"})
    assert result.returncode == 0, result.stdout
    assert _Handler.seen_auth == ["Bearer t0ken"]


def test_healthcheck_http_503_is_unhealthy_with_reason(server):
    result = _probe(f"http://127.0.0.1:{server}/degraded")
    assert result.returncode == 1
    assert "HTTP 503" in result.stdout


def test_healthcheck_default_url_from_environment(server):
    result = _probe(env={"AUTOTRADER_HEALTH_URL": f"http://127.0.0.1:{server}/health"})
    assert result.returncode == 0, result.stdout


def test_healthcheck_tcp_open_and_closed_ports(server):
    assert _probe(f"tcp://127.0.0.1:{server}").returncode == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    result = _probe(f"tcp://127.0.0.1:{closed}")
    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy:")


def test_healthcheck_unknown_scheme_is_unhealthy():
    result = _probe("file:///etc/passwd")
    assert result.returncode == 1
    assert "expected an http" in result.stdout
