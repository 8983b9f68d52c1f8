"""The dashboard's protections (issue 11, point 3): Host check, CSP, no framing, a token beyond loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from test_dashboard import robot_store, serving

from autotrader.adapters.state import SqlStateStore, open_state_store
from autotrader.dashboard import create_app

TOKEN = "dashboard-token-0123456789abcdef"


@pytest.fixture
def store(tmp_path) -> Iterator[SqlStateStore]:
    s = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    robot_store(s)
    yield s
    s.close()


def test_dashboard_refuses_a_rebound_host_so_a_foreign_page_cannot_read_positions(store) -> None:
    with serving(create_app(store)) as url, httpx.Client(base_url=url, timeout=10) as http:
        rebound = [http.get(path, headers={"Host": "rebind.evil.example"}) for path in ("/", "/api/snapshot")]
        local = http.get("/api/snapshot", headers={"Host": "localhost"})
    assert [r.status_code for r in rebound] == [400, 400]
    assert all("BTCUSDT" not in r.text for r in rebound)
    assert local.status_code == 200
    assert "BTCUSDT" in local.text


def test_dashboard_page_sends_csp_with_a_script_nonce_and_denies_framing(store) -> None:
    with serving(create_app(store)) as url, httpx.Client(base_url=url, timeout=10) as http:
        page = http.get("/")
        snapshot = http.get("/api/snapshot")
    csp = page.headers["content-security-policy"]
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'<script nonce="{nonce}">' in page.text
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    for response in (page, snapshot):
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_dashboard_with_a_token_needs_it_on_every_request_and_a_link_sets_a_cookie(store) -> None:
    app = create_app(store, token=TOKEN, allowed_hosts=("dash.internal",))
    with serving(app) as url, httpx.Client(base_url=url, timeout=10, follow_redirects=True) as http:
        anonymous = [http.get(path) for path in ("/", "/api/snapshot", "/healthz")]
        wrong = http.get("/api/snapshot", headers={"Authorization": "Bearer nope"})
        bearer = http.get("/api/snapshot", headers={"Authorization": f"Bearer {TOKEN}", "Host": "dash.internal"})
        bad_link = http.get("/?token=nope")
        link = http.get(f"/?token={TOKEN}")
        with_cookie = http.get("/api/snapshot")  # the client keeps the cookie the link set
    assert [r.status_code for r in anonymous] == [401, 401, 401]
    assert wrong.status_code == 401
    assert bearer.status_code == 200
    assert bad_link.status_code == 401
    assert link.status_code == 200  # 303 to the page, followed, with the cookie
    assert "HttpOnly" in link.history[0].headers["set-cookie"]
    assert "SameSite=Strict" in link.history[0].headers["set-cookie"]
    assert TOKEN not in link.text
    assert with_cookie.status_code == 200


def test_dashboard_cli_beyond_loopback_warns_and_requires_the_token(store, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AUTOTRADER_HOME": str(tmp_path / "home"), "AUTOTRADER_API_TOKEN": TOKEN}
    command = [sys.executable, "-m", "autotrader", "dashboard", "--db", str(tmp_path / "state.db")]
    command += ["--host", "0.0.0.0", "--port", str(port)]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 30
            answer = None
            while time.monotonic() < deadline and answer is None:
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/api/snapshot", timeout=2)
                except httpx.TransportError:
                    time.sleep(0.2)
            authorised = httpx.get(
                f"http://127.0.0.1:{port}/api/snapshot", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
            )
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
    assert answer is not None and answer.status_code == 401
    assert authorised.status_code == 200
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert "beyond this machine" in warnings[0]
    assert "API token" in warnings[0]
    assert TOKEN not in err
