"""No secret leaks (issue 11, point 5): not in a log line, an exception chain, a report, a database row or an answer.

Known secrets: the Bybit API key and secret, the control API token, and a PostgreSQL password
written in each DSN form. Every run below is real: a demo robot process against an exchange-sim,
a live run whose signature the exchange refuses, an unreachable PostgreSQL, and the dashboard on
a failing store.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from robot_harness import connect, sim_server

from autotrader.adapters.state import SqlStateStore, open_state_store, state_url
from autotrader.adapters.storage.postgres_store import PostgresCandleStore
from autotrader.dashboard import create_app
from autotrader.domain.errors import AutoTraderError, StorageError
from autotrader.domain.redact import forget_secrets
from autotrader.logs import JsonFormatter, RedactingFilter

API_KEY = "SECRETKEYAbCdEf1234"
API_SECRET = "SECRETSECRETqWeRtY0987654321zxcvbnm"
API_TOKEN = "SECRETTOKEN-9f8e7d6c5b4a3f2e1d0c"
PG_PASSWORD = "SECRETpw-Zz9 8'q"  # a space and a quote: the libpq forms must quote it
SECRETS = (API_KEY, API_SECRET, API_TOKEN, PG_PASSWORD, "SECRETpw-Zz9", "SECRET")


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in {where}: ...{_around(text, secret)}..."


def _around(text: str, secret: str) -> str:
    i = text.find(secret)
    return text[max(0, i - 120) : i + len(secret) + 40]


def chain(e: BaseException) -> str:
    return "".join(traceback.format_exception(e))


@pytest.fixture(autouse=True)
def _fresh_secret_memory():
    forget_secrets()  # each check below must hold without what an earlier test taught the routine
    yield
    forget_secrets()


@pytest.fixture
def captured_logs():
    """Every ``autotrader`` log record, through the robot's own handler set-up (JSON lines, redacting filter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("autotrader")
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- PostgreSQL DSN forms


def _dsn_forms(port: int, password: str = PG_PASSWORD) -> dict[str, str]:
    from urllib.parse import quote

    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    return {
        "url": f"postgresql://trader:{quote(password, safe='')}@127.0.0.1:{port}/state",
        "url-raw-userinfo": f"postgresql://trader:SECRETpw-Zz9@127.0.0.1:{port}/state",
        "query": f"postgresql://trader@127.0.0.1:{port}/state?password={quote(password, safe='')}",
        "libpq": f"host=127.0.0.1 port={port} user=trader password=SECRETpw-Zz9 dbname=state",
        "libpq-quoted": f"host=127.0.0.1 port={port} user=trader password='{quoted}' dbname=state",
    }


@pytest.mark.parametrize("form", list(_dsn_forms(1)))
def test_secrets_unreachable_postgresql_never_shows_the_password(form, tmp_path, captured_logs) -> None:
    dsn = _dsn_forms(_free_port())[form]
    with pytest.raises(StorageError) as state_error:
        open_state_store(state_url(tmp_path, dsn))
    with pytest.raises(StorageError) as candle_error:
        PostgresCandleStore(dsn)
    for name, error in (("state store", state_error.value), ("candle store", candle_error.value)):
        assert_no_secret(f"{name} error", str(error))
        assert_no_secret(f"{name} exception chain", chain(error))
        logging.getLogger("autotrader.test").error("store failed: %s", error, exc_info=error)
    assert "connect" in str(state_error.value).lower() or "refused" in str(state_error.value).lower()
    assert_no_secret("log lines", captured_logs.getvalue())


def test_secrets_dashboard_and_status_cli_on_an_unreachable_postgresql(tmp_path) -> None:
    from typer.testing import CliRunner

    from autotrader.cli import app

    port = _free_port()
    for form, dsn in _dsn_forms(port).items():
        for args in (["dashboard", "--db", dsn], ["autotrade", "--mode", "status", "--db", dsn]):
            result = CliRunner().invoke(app, args, env={"AUTOTRADER_HOME": str(tmp_path)})
            assert result.exit_code != 0, (form, args, result.output)
            assert isinstance(result.exception, StorageError), (form, args, result.exception)
            assert_no_secret(f"{args[0]} output ({form})", result.output)
            assert_no_secret(f"{args[0]} error ({form})", chain(result.exception))


# ------------------------------------------------------------------------------------- the dashboard


def _failing_store(port: int, dsn: str) -> SqlStateStore:
    """A store whose database is unreachable (the robot's store after the server went away)."""
    url = state_url(Path("/nonexistent"), dsn)
    engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
    return SqlStateStore(engine, url)


def test_secrets_dashboard_on_a_failing_store_answers_without_the_password(tmp_path, captured_logs) -> None:
    import uvicorn

    port = _free_port()
    for form, dsn in _dsn_forms(port).items():
        store = _failing_store(port, dsn)
        app = create_app(store, refresh_s=0.2, keepalive_s=5)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
            with httpx.Client(base_url=base, timeout=10) as http:
                answers = [http.get(path) for path in ("/", "/healthz", "/api/snapshot")]
                with http.stream("GET", "/api/stream") as response:
                    lines = []
                    for line in response.iter_lines():
                        lines.append(line)
                        if line.startswith("data:") and "error" in line:
                            break
        finally:
            server.should_exit = True
            thread.join(5)
            store.close()
        assert [a.status_code for a in answers] == [200, 503, 503]
        assert "error" in answers[2].json()
        for a in answers:
            assert_no_secret(f"dashboard {a.request.url.path} ({form})", a.text + str(a.headers))
        assert_no_secret(f"dashboard stream ({form})", "\n".join(lines))
    assert_no_secret("dashboard log lines", captured_logs.getvalue())


def test_secrets_dashboard_banner_on_a_reachable_store_with_a_password_in_the_query(postgres_schema, tmp_path) -> None:
    dsn, schema = postgres_schema
    # local PostgreSQL trusts the connection, so the password is ignored: the store opens and the banner prints
    url = f"{dsn}?options=-csearch_path%3D{schema}&password=SECRETpw-Zz9"
    open_state_store(state_url(tmp_path, url), schema=schema).close()
    port = _free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "autotrader", "dashboard", "--db", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "AUTOTRADER_HOME": str(tmp_path)},
    ) as proc:
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
        finally:
            proc.terminate()
            proc.wait(10)
    assert "AutoTrader dashboard of" in banner, banner
    assert "password=***" in banner
    assert_no_secret("dashboard banner", banner)


# ----------------------------------------------------------------------------------------- exchange


def test_secrets_bybit_error_and_its_ccxt_cause_hold_no_key(captured_logs) -> None:
    with sim_server() as sim:
        sim.admin.add_account(API_KEY, "the-real-secret-0123456789", {"USDT": "1000"})

        async def call() -> BaseException:
            exchange = connect(sim, (API_KEY, API_SECRET))  # a wrong secret: Bybit echoes the signed string
            try:
                await exchange.balance()
            except AutoTraderError as e:
                return e
            finally:
                await exchange.close()
            raise AssertionError("the call succeeded with a wrong secret")

        error = asyncio.run(call())
    assert "10004" in str(error)
    assert error.__cause__ is not None  # the vendor's exception is still chained, redacted
    assert_no_secret("error", str(error))
    assert_no_secret("exception chain", chain(error))
    logging.getLogger("autotrader.adapters.exchange").error("balance failed", exc_info=error)
    assert_no_secret("log lines", captured_logs.getvalue())


@pytest.mark.slow
def test_secrets_failing_live_run_shows_no_key_secret_or_token(tmp_path) -> None:
    with sim_server() as sim:
        sim.admin.add_account(API_KEY, "the-real-secret-0123456789", {"USDT": "1000"})
        env = {
            **os.environ,
            "BYBIT_API_KEY": API_KEY,
            "BYBIT_API_SECRET": API_SECRET,
            "AUTOTRADER_API_TOKEN": API_TOKEN,
            "AUTOTRADER_HOME": str(tmp_path / "home"),
        }
        args = ["autotrade", "--mode", "live", "--confirm-live", "--strategy", "sma_cross", "--timeframe", "1m"]
        args += ["--exchange-url", sim.url, "--db", f"sqlite:///{tmp_path / 'live.db'}", "--metrics-port", "0"]
        result = subprocess.run(
            [sys.executable, "-m", "autotrader", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
    assert result.returncode != 0
    assert "refused the API key" in result.stderr or "10004" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert_no_secret("live run output", result.stdout + result.stderr)
    assert_no_secret("live run database", _dump_sqlite(tmp_path / "live.db"))


# -------------------------------------------------------------------------------------- a demo robot


def _dump_sqlite(path: Path) -> str:
    if not path.exists():
        return ""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(f"{t}: {row!r}" for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))


@pytest.mark.slow
def test_secrets_demo_robot_logs_answers_rows_and_report_hold_no_secret(tmp_path) -> None:
    db = tmp_path / "state.db"
    home = tmp_path / "home"
    with sim_server(speed=600.0, ws_tick_s=0.1) as sim:
        sim.admin.add_account(API_KEY, API_SECRET, {"USDT": "10000"})
        env = {
            **os.environ,
            "BYBIT_API_KEY": API_KEY,
            "BYBIT_API_SECRET": API_SECRET,
            "AUTOTRADER_API_TOKEN": API_TOKEN,
            "AUTOTRADER_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
        }
        args = ["autotrade", "--mode", "demo", "--exchange-url", sim.url, "--strategy", "sma_cross"]
        args += ["--param", "fast=3", "--param", "slow=8", "--symbols", "BTCUSDT,ETHUSDT", "--timeframe", "1m"]
        args += ["--capital", "10000", "--risk", "aggressive", "--db", f"sqlite:///{db}", "--metrics-port", "0"]
        log_path = tmp_path / "robot.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "autotrader", *args], env=env, stdout=log, stderr=log)
        try:
            port = _wait(lambda: _port(log_path), 120, proc, log_path)
            base = f"http://127.0.0.1:{port}"
            _wait(lambda: (db.exists() and "fills: (" in _dump_sqlite(db)) or None, 120, proc, log_path)
            auth = {"Authorization": f"Bearer {API_TOKEN}"}
            with httpx.Client(base_url=base, timeout=5) as http:
                responses = (
                    http.get("/health"),
                    http.get("/metrics"),
                    http.post("/kill-switch", json={"reason": "secrets test"}, headers=auth),
                    http.post("/kill-switch", json={}, headers={"Authorization": "Bearer wrong"}),
                    http.post("/kill-switch", content=b"x", headers={"Content-Type": "text/plain", **auth}),
                    http.get("/kill-switch"),
                    http.delete("/kill-switch", headers={**auth, "Content-Type": "application/json"}),
                )
            answers = [f"{r.status_code} {r.headers} {r.text}" for r in responses]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log_path.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = log_path.read_text()
    assert '"logger"' in logs
    assert_no_secret("robot log", logs)
    assert_no_secret("control answers", "\n".join(answers))
    assert answers[2].startswith("200") and answers[3].startswith("401")
    rows = _dump_sqlite(db)
    assert "orders" in rows
    assert_no_secret("state.db rows", rows)
    status = subprocess.run(
        [sys.executable, "-m", "autotrader", "autotrade", "--mode", "status", "--db", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert status.returncode == 0, status.stderr[-2000:]
    assert "LIVE TRADING RESULTS" in status.stdout
    assert_no_secret("status report", status.stdout + status.stderr)


def _port(path: Path) -> int | None:
    m = re.search(r"metrics endpoint http://127\.0\.0\.1:(\d+)/metrics", path.read_text())
    return int(m.group(1)) if m else None


def _wait(fn, timeout_s: float, proc: subprocess.Popen, log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"robot exited with {proc.returncode}: {log.read_text()[-3000:]}")
        value = fn()
        if value is not None and value is not False:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out: {log.read_text()[-3000:]}")


def test_secrets_json_log_line_of_the_robot_is_json() -> None:
    # the redacting filter keeps each record one JSON object (message and traceback as strings)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    record = logging.LogRecord("autotrader.x", logging.ERROR, __file__, 1, "dsn %s", (f"password={API_SECRET}",), None)
    handler.handle(record)
    assert json.loads(stream.getvalue())["message"] == "dsn password=***"
