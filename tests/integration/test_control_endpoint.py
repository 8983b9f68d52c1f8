"""The robot's control endpoint (``/metrics``, ``/health``, ``/kill-switch``) against hostile and unlucky clients.

Each test reproduces one finding of issue 11 (points 3, 8 and 10) on a real uvicorn server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autotrader.adapters.state import open_state_store
from autotrader.api.control import ControlServer
from autotrader.api.security import load_api_token
from autotrader.domain.errors import ConfigError
from autotrader.live.metrics import RobotMetrics
from autotrader.live.records import RobotEvent
from autotrader.live.risk_state import KillSwitch

TOKEN = "t" * 20 + "-control-test"
JSON = {"Content-Type": "application/json"}
AUTH = {**JSON, "Authorization": f"Bearer {TOKEN}"}


@contextlib.contextmanager
def control(tmp_path: Path, **options) -> Iterator[tuple[str, KillSwitch, RobotMetrics]]:
    metrics = RobotMetrics()
    kill = options.pop("kill", None) or KillSwitch(tmp_path / "KILL")
    server = ControlServer(metrics, kill, health=lambda: {"status": "running"}, token=TOKEN, port=0, **options)
    port = server.start()
    try:
        yield f"http://127.0.0.1:{port}", kill, metrics
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------ /metrics


def test_control_metrics_are_the_robots_in_the_prometheus_format(tmp_path) -> None:
    with control(tmp_path) as (url, _, metrics):
        metrics.signals.inc(verdict="accepted", source="kafka")
        metrics.signals.inc(2, verdict="invalid", source="kafka")
        metrics.latency.observe(0.004)
        metrics.latency.observe(0.3)
        metrics.equity.set(10_250.5)
        response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    signals = {tuple(sorted(s.labels.items())): s.value for s in families["autotrader_signals"].samples}
    assert signals == {
        (("source", "kafka"), ("verdict", "accepted")): 1.0,
        (("source", "kafka"), ("verdict", "invalid")): 2.0,
    }
    assert [s.value for s in families["autotrader_equity"].samples] == [10_250.5]
    latency = {
        s.name + str(s.labels.get("le", "")): s.value for s in families["autotrader_signal_to_ack_seconds"].samples
    }
    assert latency["autotrader_signal_to_ack_seconds_bucket0.005"] == 1.0
    assert latency["autotrader_signal_to_ack_seconds_bucket+Inf"] == 2.0
    assert latency["autotrader_signal_to_ack_seconds_count"] == 2.0
    assert latency["autotrader_signal_to_ack_seconds_sum"] == pytest.approx(0.304)


# ------------------------------------------------------------------------------- the kill switch (3)


def test_control_kill_switch_from_a_foreign_origin_in_text_plain_is_refused(tmp_path) -> None:
    with control(tmp_path) as (url, kill, _):
        # what a page on another site can send without a preflight
        simple = httpx.post(
            f"{url}/kill-switch", content=b"x", headers={"Origin": "http://evil.example", "Content-Type": "text/plain"}
        )
        text_plain = httpx.post(f"{url}/kill-switch", content=b"{}", headers={**AUTH, "Content-Type": "text/plain"})
        foreign = httpx.post(f"{url}/kill-switch", json={}, headers={**AUTH, "Origin": "http://evil.example"})
        no_token = httpx.post(f"{url}/kill-switch", json={}, headers=JSON)
        wrong_token = httpx.post(f"{url}/kill-switch", json={}, headers={**JSON, "Authorization": "Bearer nope"})
        assert not kill.engaged
    assert simple.status_code == 403
    assert text_plain.status_code == 415
    assert foreign.status_code == 403
    assert no_token.status_code == 401
    assert wrong_token.status_code == 401
    assert not (tmp_path / "KILL").exists()


def test_control_kill_switch_engages_and_releases_with_the_token_from_the_same_origin(tmp_path) -> None:
    with control(tmp_path) as (url, kill, _):
        port = url.rsplit(":", 1)[1]
        on = httpx.post(
            f"{url}/kill-switch", json={"reason": "manual"}, headers={**AUTH, "Origin": f"http://127.0.0.1:{port}"}
        )
        assert on.status_code == 200, on.text
        assert on.json()["engaged"] is True
        assert kill.engaged
        assert (tmp_path / "KILL").exists()  # survives a restart
        state = httpx.get(f"{url}/kill-switch").json()
        assert state["engaged"] is True
        assert "manual" in state["why"]
        off = httpx.request("DELETE", f"{url}/kill-switch", headers={**JSON, "X-AutoTrader-Token": TOKEN})
        assert off.status_code == 200, off.text
        assert not kill.engaged
        assert not (tmp_path / "KILL").exists()
        health = httpx.get(f"{url}/health")
    assert health.json() == {"status": "running", "kill_switch": False}
    assert health.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in health.headers["content-security-policy"]


def test_control_rebound_host_cannot_release_and_no_release_deletes_the_operators_file(tmp_path) -> None:
    kill_file = tmp_path / "KILL"
    kill_file.write_text("operator: maintenance\n")
    with control(tmp_path) as (url, kill, _):
        rebound = httpx.request("DELETE", f"{url}/kill-switch", headers={**AUTH, "Host": "rebind.evil.example"})
        assert rebound.status_code == 400
        assert "--allowed-host" in rebound.json()["error"]
        released = httpx.request("DELETE", f"{url}/kill-switch", headers=AUTH)
        assert released.status_code == 409
        assert "entries stay paused" in released.json()["error"]
        assert kill.engaged
    assert kill_file.read_text() == "operator: maintenance\n"


def test_control_allowed_host_is_answered(tmp_path) -> None:
    with control(tmp_path, allowed_hosts=("robot.internal",)) as (url, _, _):
        ok = httpx.get(f"{url}/health", headers={"Host": "robot.internal"})
        other = httpx.get(f"{url}/health", headers={"Host": "robot.internal.evil"})
    assert ok.status_code == 200
    assert other.status_code == 400


def test_control_kill_that_cannot_be_persisted_answers_an_error_saying_paused_in_memory(tmp_path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    with control(tmp_path, kill=KillSwitch(blocker / "KILL")) as (url, kill, _):
        response = httpx.post(f"{url}/kill-switch", json={}, headers=AUTH)
        assert kill.engaged
    assert response.status_code == 500
    body = response.json()
    assert "paused in memory only" in body["error"]
    assert body["engaged"] is True
    assert body["persisted"] is False


def test_control_port_taken_is_one_line_naming_metrics_port_and_0_picks_a_free_port(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ControlServer(RobotMetrics(), KillSwitch(), health=dict, token=TOKEN, port=port)
        with pytest.raises(ConfigError) as caught:
            server.start()
    message = str(caught.value)
    assert "\n" not in message
    assert f"--metrics-port {port}" in message
    assert "0 picks a free port" in message
    with control(tmp_path) as (url, _, _):
        assert httpx.get(f"{url}/health").status_code == 200


# ------------------------------------------------------------------------------------ the server (10)


def test_control_slow_header_drip_is_cut_off(tmp_path) -> None:
    with control(tmp_path, head_timeout_s=1.0) as (url, _, _):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            started = time.monotonic()
            closed_after = None
            while time.monotonic() - started < 8:
                try:
                    sock.sendall(b"X")
                    sock.settimeout(0.25)
                    if sock.recv(1024) == b"":
                        closed_after = time.monotonic() - started
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed_after = time.monotonic() - started
                    break
        assert closed_after is not None, "a dripping client held the connection"
        assert closed_after < 3.0
        assert httpx.get(f"{url}/health").status_code == 200


def test_control_100_kib_request_line_and_oversized_body_are_refused_cleanly(tmp_path) -> None:
    with control(tmp_path) as (url, kill, _):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /" + b"a" * 100 * 1024 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 4") or answer == b""
        big = httpx.post(f"{url}/kill-switch", content=b"[" + b"1," * 20_000 + b"1]", headers=AUTH)
        not_json = httpx.post(f"{url}/kill-switch", content=b"{nope", headers=AUTH)
        assert not kill.engaged
        assert httpx.get(f"{url}/health").status_code == 200
    assert big.status_code == 413
    assert not_json.status_code == 400


# --------------------------------------------------------------------------------- a slow store (8)


@pytest.mark.slow
def test_control_health_and_kill_switch_answer_within_1_s_while_a_foreign_lock_blocks_the_store(tmp_path) -> None:
    db = tmp_path / "state.db"
    store = open_state_store(f"sqlite:///{db}")
    foreign = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    foreign.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    timer = threading.Timer(6.0, lambda: foreign.execute("ROLLBACK"))
    answers: list[tuple[str, int, float]] = []
    try:
        with control(tmp_path) as (url, kill, _):

            def client() -> None:
                time.sleep(0.5)  # the robot's loop is inside the store call by now
                for method, path in (("GET", "/health"), ("GET", "/metrics"), ("POST", "/kill-switch")):
                    t0 = time.monotonic()
                    r = httpx.request(method, f"{url}{path}", json={} if method == "POST" else None, headers=AUTH)
                    answers.append((path, r.status_code, time.monotonic() - t0))

            async def robot_loop() -> float:
                t0 = time.monotonic()
                store.record_event(RobotEvent(1, "fault", "written while the lock is held"))  # waits for the lock
                return time.monotonic() - t0

            asker = threading.Thread(target=client)
            asker.start()
            timer.start()
            blocked_s = asyncio.run(robot_loop())
            asker.join(10)
            assert kill.engaged
    finally:
        timer.cancel()
        foreign.close()
        store.close()
    assert blocked_s >= 5.0  # the store really was blocked, and the robot's loop with it
    assert [(p, s) for p, s, _ in answers] == [("/health", 200), ("/metrics", 200), ("/kill-switch", 200)]
    assert max(t for _, _, t in answers) < 1.0, answers


def test_state_files_and_token_file_are_created_owner_only(tmp_path) -> None:
    db = tmp_path / "home" / "state.db"
    store = open_state_store(f"sqlite:///{db}")
    store.record_event(RobotEvent(1, "start", "x"))
    try:
        for path in (db, db.with_name("state.db-wal"), db.with_name("state.db-shm")):
            assert path.exists(), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        store.close()
    token = load_api_token(tmp_path / "home", env={})
    token_file = tmp_path / "home" / "api_token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert load_api_token(tmp_path / "home", env={}) == token  # the same token on the next run
    assert len(token) >= 32
    os.chmod(token_file, 0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        load_api_token(tmp_path / "home", env={})
    assert load_api_token(tmp_path, env={"AUTOTRADER_API_TOKEN": TOKEN}) == TOKEN


def test_state_store_created_before_with_0644_is_tightened_to_0600(tmp_path) -> None:
    db = tmp_path / "state.db"
    open_state_store(f"sqlite:///{db}").close()
    os.chmod(db, 0o644)
    open_state_store(f"sqlite:///{db}").close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_control_body_that_trickles_in_too_slowly_is_answered_408(tmp_path) -> None:
    from starlette.applications import Starlette
    from test_dashboard import serving

    from autotrader.api.security import RequestGuard

    app = RequestGuard(Starlette(), token=TOKEN, body_timeout_s=0.5)
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            head = (
                "POST /kill-switch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {TOKEN}\r\nContent-Length: 10\r\n\r\n{{}}"
            )
            t0 = time.monotonic()
            sock.sendall(head.encode())
            answer = sock.recv(4096)
            waited = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 408")
    assert waited < 3.0
